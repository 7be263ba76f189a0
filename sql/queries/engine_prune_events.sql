-- Delete up to $2 events received before $1.
-- Rows another transaction holds are skipped (a later batch takes them): the janitor
-- never waits on, or deadlocks with, the work it cleans up after.
WITH gone AS (
    DELETE FROM engine_events WHERE id IN (
        SELECT id FROM engine_events WHERE received_at < $1 ORDER BY received_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
