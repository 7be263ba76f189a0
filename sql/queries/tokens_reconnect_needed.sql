-- Credentials waiting for an operator's reconnect: refused by their platform, or Meta
-- tokens expiring before $1 (now + 7 days); up to $2, by tenant.
SELECT t.name AS tenant, p.platform, p.account_id, p.last_error_code, p.access_token_expires_at
FROM platform_credentials p JOIN tenants t ON t.id = p.tenant_id
WHERE p.last_error_code = 'token_revoked'
   OR (p.platform = 'meta' AND p.access_token_expires_at IS NOT NULL AND p.access_token_expires_at < $1)
ORDER BY t.name, p.platform, p.account_id
LIMIT $2
