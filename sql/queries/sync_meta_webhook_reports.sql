-- The Meta ad accounts $1 (ids without the act_ prefix, as Meta's notifications name
-- them) as every tenant connected them, each with its cached reports (none: one row with
-- a null report_type). A cross-tenant read: the daemon's own role (deneva_system).
SELECT p.tenant_id, p.account_id, regexp_replace(p.account_id, '^act_', '') AS notified_id,
       p.last_error_code, c.report_type, c.date_range
FROM platform_credentials p
LEFT JOIN metric_cache c
  ON c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
WHERE p.platform = 'meta' AND regexp_replace(p.account_id, '^act_', '') = ANY($1::text[])
ORDER BY p.tenant_id, p.account_id, c.report_type, c.date_range
