-- The newest runs, optionally of one status ($1) and one function ($2), at most $3.
SELECT id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at,
       last_error, last_traceback, output, event
FROM engine_runs
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR function_id = $2)
ORDER BY created_at DESC, id
LIMIT $3
