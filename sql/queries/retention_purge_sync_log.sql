-- Delete up to $2 sync_log rows written before $1.
WITH gone AS (
    DELETE FROM sync_log WHERE id IN (
        SELECT id FROM sync_log WHERE created_at < $1 ORDER BY created_at LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
