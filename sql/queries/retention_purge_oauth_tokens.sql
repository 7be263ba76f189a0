-- Delete up to $2 oauth_tokens rows that expired before $1 (a used one is kept until then:
-- a replayed refresh token or code is recognised, and its grant revoked, until it expires).
WITH gone AS (
    DELETE FROM oauth_tokens WHERE id IN (
        SELECT id FROM oauth_tokens WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
