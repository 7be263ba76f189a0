-- Delete up to $2 console sessions that expired before $1 (no longer usable: signing in
-- again makes a new one).
WITH gone AS (
    DELETE FROM admin_sessions WHERE id IN (
        SELECT id FROM admin_sessions WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING 1
)
SELECT count(*) FROM gone
