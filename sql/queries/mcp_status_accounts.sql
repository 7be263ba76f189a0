-- get_sync_status: a tenant's connected accounts with their health.
SELECT p.platform, p.account_id, p.healthy, p.last_error_code, p.last_sync_failure_at, p.last_success_at,
       p.access_token_expires_at, t.name AS tenant
FROM platform_credentials p JOIN tenants t ON t.id = p.tenant_id
WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.platform = $2)
ORDER BY p.platform, p.account_id
LIMIT $3
