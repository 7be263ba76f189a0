-- Delete up to $2 connect codes that expired before $1.
WITH gone AS (
    DELETE FROM oauth_connect_codes WHERE code_hash IN (
        SELECT code_hash FROM oauth_connect_codes WHERE expires_at < $1 ORDER BY expires_at LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
