-- Credentials of platforms $2 whose access token expires before $1, soonest first, up to
-- $3; those waiting for a reconnect are left out (counted by tokens_expiring_skipped).
SELECT id, (extract(epoch FROM access_token_expires_at) * 1000)::bigint AS expires_ms
FROM platform_credentials
WHERE platform = ANY($2::text[]) AND access_token_expires_at IS NOT NULL
  AND access_token_expires_at < $1
  AND coalesce(last_error_code, '') NOT IN ('token_revoked', 'credential_unreadable')
ORDER BY access_token_expires_at
LIMIT $3
