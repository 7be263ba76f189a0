-- Delete up to $2 idempotency keys whose window ended before $1.
-- Rows another transaction holds are skipped (a later batch takes them): the janitor
-- never waits on, or deadlocks with, the work it cleans up after.
WITH gone AS (
    DELETE FROM engine_idempotency WHERE key IN (
        SELECT key FROM engine_idempotency WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
