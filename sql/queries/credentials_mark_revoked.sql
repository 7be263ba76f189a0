-- The platform refused the credential's token ($2 now): unhealthy, token_revoked, until
-- it is connected again. Its refresh lease (owner $3) is given up.
UPDATE platform_credentials
SET healthy = false, last_error_code = 'token_revoked', last_sync_failure_at = $2, updated_at = $2,
    refresh_owner = CASE WHEN refresh_owner = $3 THEN NULL ELSE refresh_owner END,
    refresh_until = CASE WHEN refresh_owner = $3 THEN NULL ELSE refresh_until END
WHERE id = $1
