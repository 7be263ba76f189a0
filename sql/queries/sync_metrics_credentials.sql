-- Every credential's health (and its token's expiry: a Meta token close to it needs a reconnect).
SELECT p.tenant_id, t.name AS tenant, p.platform, p.account_id, p.healthy, p.last_error_code,
       p.last_sync_failure_at, p.last_success_at, p.access_token_expires_at
FROM platform_credentials p JOIN tenants t ON t.id = p.tenant_id
ORDER BY t.name, p.platform, p.account_id
