-- Delete up to $2 events received before $1.
WITH gone AS (
    DELETE FROM engine_events WHERE id IN (
        SELECT id FROM engine_events WHERE received_at < $1 ORDER BY received_at LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
