-- One cached report with its credential's health (in a tenant transaction: row-level
-- security scopes it).
SELECT c.payload, c.fetched_at, c.expires_at, c.is_stale, p.last_error_code, p.healthy
FROM metric_cache c
LEFT JOIN platform_credentials p
       ON p.tenant_id = c.tenant_id AND p.platform = c.platform AND p.account_id = c.account_id
WHERE c.tenant_id = $1 AND c.platform = $2 AND c.account_id = $3 AND c.report_type = $4 AND c.date_range = $5
