-- Delete up to $2 inbound deliveries received before $1 (their retries can no longer
-- come); rows another transaction holds are skipped (a later batch takes them).
WITH gone AS (
    DELETE FROM webhook_deliveries WHERE (source, id) IN (
        SELECT source, id FROM webhook_deliveries WHERE received_at < $1 ORDER BY received_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
