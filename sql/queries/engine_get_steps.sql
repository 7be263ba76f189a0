-- One run's recorded steps, in the order they completed.
SELECT step_id, output, completed_at FROM engine_steps WHERE run_id = $1 ORDER BY completed_at, step_id
