-- One debounced run: a queued run of the same key takes the newer event and due time.
INSERT INTO engine_runs (id, function_id, status, event, max_attempts, priority, run_at,
                         concurrency_key, concurrency_limit, debounce_key, created_at)
VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (debounce_key) WHERE status = 'queued' AND debounce_key IS NOT NULL
DO UPDATE SET event = excluded.event, run_at = excluded.run_at
RETURNING id
