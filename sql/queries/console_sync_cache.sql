-- Per (tenant, platform, report type) of tenants $1: cached reports (every account and
-- date range), the latest fetch, and how many are stale or expired at $2.
SELECT tenant_id, platform, report_type, count(*) AS cached, max(fetched_at) AS last_fetched,
       count(*) FILTER (WHERE is_stale OR expires_at <= $2) AS stale
FROM metric_cache
WHERE tenant_id = ANY($1::uuid[])
GROUP BY tenant_id, platform, report_type
