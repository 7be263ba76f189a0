-- Per (tenant, platform, report type) of tenants $1: the latest sync attempt since $2 (its
-- outcome and error code), read through sync_log_key.
SELECT DISTINCT ON (tenant_id, platform, report_type)
       tenant_id, platform, report_type, outcome, error_code, created_at
FROM sync_log
WHERE tenant_id = ANY($1::uuid[]) AND created_at >= $2
ORDER BY tenant_id, platform, report_type, created_at DESC, id DESC
