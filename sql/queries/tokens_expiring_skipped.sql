-- Expiring tokens (before $1, platforms $2) not refreshed because the credential waits for
-- a reconnect, counted by why.
SELECT CASE last_error_code WHEN 'token_revoked' THEN 'revoked' ELSE 'unhealthy' END AS reason,
       count(*) AS n
FROM platform_credentials
WHERE platform = ANY($2::text[]) AND access_token_expires_at IS NOT NULL
  AND access_token_expires_at < $1 AND last_error_code IN ('token_revoked', 'credential_unreadable')
GROUP BY 1
