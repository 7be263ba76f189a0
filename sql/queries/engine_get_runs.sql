-- Status records of runs $1.
SELECT id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at,
       last_error, last_traceback, output, event
FROM engine_runs WHERE id = ANY($1::uuid[])
