-- Remove one run's wait ($1 run, $2 step); returns 1 if it was there.
DELETE FROM engine_waits WHERE run_id = $1 AND step_id = $2 RETURNING 1
