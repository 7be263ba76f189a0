-- Replace credential $1's tokens (data key $2 wrapped under KEK $8) only if it is still
-- at version $6 (compare-and-set: a reconnect meanwhile wins), and give up a refresh
-- lease held by $7. Returns the new version, nothing when the credential changed or is
-- gone.
WITH stored AS (
    UPDATE platform_credentials
    SET wrapped_key = $2, kek_id = $8, refresh_token_ct = $3, access_token_ct = $4,
        access_token_expires_at = $5, token_version = token_version + 1, updated_at = now(),
        refresh_owner = CASE WHEN refresh_owner = $7 THEN NULL ELSE refresh_owner END,
        refresh_until = CASE WHEN refresh_owner = $7 THEN NULL ELSE refresh_until END
    WHERE id = $1 AND token_version = $6
    RETURNING token_version
)
SELECT token_version, pg_notify('deneva_credentials', '') IS NOT NULL AS notified FROM stored
