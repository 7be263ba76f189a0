-- The due runs ($1 now) of concurrency key $2 whose key row the database refuses, at
-- most $3: they are started without the key's lock, to fail (see _claim_keyed_isolated).
SELECT id FROM engine_runs
WHERE concurrency_key = $2 AND status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1
  AND length(concurrency_key) <= 200
ORDER BY priority DESC, run_at
LIMIT $3
FOR UPDATE SKIP LOCKED
