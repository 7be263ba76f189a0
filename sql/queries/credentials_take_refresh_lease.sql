-- Take the refresh lease of one account's credential ($1 tenant, $2 platform, $3 account)
-- for owner $4 until $5 ($6 now), if it is free, expired, or already ours. Returns the
-- credential's id (null: no such credential) and whether the lease was taken.
WITH credential AS (
    SELECT id FROM platform_credentials WHERE tenant_id = $1 AND platform = $2 AND account_id = $3
), taken AS (
    UPDATE platform_credentials SET refresh_owner = $4, refresh_until = $5
    WHERE id = (SELECT id FROM credential)
      AND (refresh_until IS NULL OR refresh_until < $6 OR refresh_owner = $4)
    RETURNING id
)
SELECT (SELECT id FROM credential) AS id, EXISTS (SELECT 1 FROM taken) AS taken
