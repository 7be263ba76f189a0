-- Due runs ($1 now) with a concurrency key, up to $2, locked; paused functions skipped.
WITH paused AS (
    SELECT coalesce(array_agg(function_id), '{}') AS ids FROM engine_paused
)
SELECT r.id, r.concurrency_key, r.concurrency_limit FROM engine_runs r, paused
WHERE r.status IN ('queued', 'sleeping', 'waiting') AND r.run_at <= $1 AND r.concurrency_key IS NOT NULL
  AND NOT ('*' = ANY(paused.ids)) AND r.function_id <> ALL(paused.ids)
ORDER BY r.priority DESC, r.run_at
LIMIT $2
FOR UPDATE OF r SKIP LOCKED
