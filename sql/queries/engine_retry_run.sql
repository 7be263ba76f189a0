-- Queue a failed or cancelled run ($1) again now ($2), with fresh attempts; its recorded
-- steps are kept (it resumes). Returns its new status, nothing if it was not retryable.
UPDATE engine_runs SET status = 'queued', attempt = 0, run_at = $2, finished_at = NULL,
       cancel_requested = false
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING status
