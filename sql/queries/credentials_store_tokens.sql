-- Replace a credential's tokens only if it is still at version $8 (compare-and-set: a
-- reconnect meanwhile wins), and give up a refresh lease held by $9. Returns the new
-- version, nothing when the credential changed or is gone.
WITH stored AS (
    UPDATE platform_credentials
    SET wrapped_key = $4, refresh_token_ct = $5, access_token_ct = $6, access_token_expires_at = $7,
        token_version = token_version + 1, updated_at = now(),
        refresh_owner = CASE WHEN refresh_owner = $9 THEN NULL ELSE refresh_owner END,
        refresh_until = CASE WHEN refresh_owner = $9 THEN NULL ELSE refresh_until END
    WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 AND token_version = $8
    RETURNING token_version
)
SELECT token_version, pg_notify('deneva_credentials', '') IS NOT NULL AS notified FROM stored
