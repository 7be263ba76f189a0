-- get_sync_status: a tenant's cached reports with their age.
SELECT platform, account_id, report_type, date_range, fetched_at, expires_at, is_stale
FROM metric_cache
WHERE tenant_id = $1 AND ($2::text IS NULL OR platform = $2)
ORDER BY platform, account_id, report_type, date_range
LIMIT $3
