-- Delete up to $2 rate-limit windows that started before $1.
-- Rows another transaction holds are skipped (a later batch takes them): the janitor
-- never waits on, or deadlocks with, the work it cleans up after.
WITH gone AS (
    DELETE FROM engine_rate_windows w WHERE (w.key, w.window_start) IN (
        SELECT key, window_start FROM engine_rate_windows WHERE window_start < $1
        ORDER BY window_start LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
