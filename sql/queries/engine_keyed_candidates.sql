-- Each key's ($2) earliest due runs ($1 now), at most its limit ($3) of them, best
-- priority first; locked, skipping rows another claim holds; paused functions skipped.
WITH paused AS (
    SELECT coalesce(array_agg(function_id), '{}') AS ids FROM engine_paused
)
SELECT c.id, c.concurrency_key, c.priority, c.run_at
FROM paused, unnest($2::text[], $3::int[]) AS k (key, slots)
CROSS JOIN LATERAL (
    SELECT r.id, r.concurrency_key, r.priority, r.run_at FROM engine_runs r
    WHERE r.concurrency_key = k.key AND r.status IN ('queued', 'sleeping', 'waiting') AND r.run_at <= $1
      AND length(r.concurrency_key) <= 200 -- engine_runs_due_by_key's bound (every key keeps it)
      AND r.function_id <> ALL(paused.ids)
    ORDER BY r.priority DESC, r.run_at
    LIMIT k.slots
    FOR UPDATE OF r SKIP LOCKED
) AS c
WHERE NOT ('*' = ANY(paused.ids))
