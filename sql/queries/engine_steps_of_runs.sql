-- The recorded steps of runs $1 (resumed runs replay them).
SELECT run_id, step_id, output FROM engine_steps WHERE run_id = ANY($1::uuid[])
