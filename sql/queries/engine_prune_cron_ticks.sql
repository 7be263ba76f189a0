-- Delete up to $2 cron ticks older than $1, never a function's latest one (schedulers
-- catch up on missed ticks from it).
-- Rows another transaction holds are skipped (a later batch takes them): the janitor
-- never waits on, or deadlocks with, the work it cleans up after.
WITH gone AS (
    DELETE FROM engine_cron_ticks c WHERE (c.function_id, c.tick_at) IN (
        SELECT t.function_id, t.tick_at FROM engine_cron_ticks t
        WHERE t.tick_at < $1
          AND t.tick_at < (SELECT max(l.tick_at) FROM engine_cron_ticks l WHERE l.function_id = t.function_id)
        ORDER BY t.tick_at
        LIMIT $2
        FOR UPDATE OF t SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
