-- Cancel a run that is not executing ($1) now ($2), and drop its waits.
WITH gone AS (DELETE FROM engine_waits WHERE run_id = $1)
UPDATE engine_runs SET status = 'cancelled', finished_at = $2, cancel_requested = true WHERE id = $1
