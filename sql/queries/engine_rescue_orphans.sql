-- Runs whose owner stopped renewing its lease (it died) go back to the queue, or fail
-- when that was their last attempt ($1 now); up to 1000 a statement. A lease has expired
-- when it is before $2 (NULL: the database's clock, so that a replica whose clock runs
-- ahead never rescues live runs). Returns what a failure needs for the function's
-- on_failure handler.
UPDATE engine_runs
SET status = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN attempt >= max_attempts THEN $1::timestamptz ELSE NULL END,
    last_error = 'worker lost (lease expired' || coalesce(' on ' || lease_owner, '') || ')',
    run_at = $1::timestamptz, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM engine_runs WHERE status = 'running' AND lease_expires_at < coalesce($2::timestamptz, now())
    ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED
)
RETURNING id, status, function_id, event, last_error
