-- The credentials of tenants $1 (the matrix's page): each account's health.
SELECT tenant_id, platform, account_id, healthy, last_error_code, last_sync_failure_at, last_success_at
FROM platform_credentials
WHERE tenant_id = ANY($1::uuid[])
ORDER BY tenant_id, platform, account_id
