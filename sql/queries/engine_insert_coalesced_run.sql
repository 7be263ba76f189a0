-- One coalesced run: while a run of the same key is queued, the event joins it (the
-- queued run keeps its event and due time); otherwise a new run. Returns the run's id.
INSERT INTO engine_runs (id, function_id, status, event, max_attempts, priority, run_at,
                         concurrency_key, concurrency_limit, debounce_key, created_at)
VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (debounce_key) WHERE status = 'queued' AND debounce_key IS NOT NULL
DO UPDATE SET debounce_key = engine_runs.debounce_key
RETURNING id
