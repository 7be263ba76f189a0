-- Delete up to $2 idempotency keys whose window ended before $1.
WITH gone AS (
    DELETE FROM engine_idempotency WHERE key IN (
        SELECT key FROM engine_idempotency WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
