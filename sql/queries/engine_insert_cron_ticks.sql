-- Record (function, tick) pairs with the runs they start; a tick recorded before (by any
-- scheduler) and the ticks of paused functions are left out. Returns the fired ticks.
WITH paused AS (
    SELECT coalesce(array_agg(function_id), '{}') AS ids FROM engine_paused
)
INSERT INTO engine_cron_ticks (function_id, tick_at, run_id)
SELECT t.function_id, t.tick_at, t.run_id
FROM unnest($1::text[], $2::timestamptz[], $3::uuid[]) AS t(function_id, tick_at, run_id), paused
WHERE NOT ('*' = ANY(paused.ids)) AND t.function_id <> ALL(paused.ids)
ON CONFLICT DO NOTHING
RETURNING function_id, tick_at
