-- Reports never fetched yet ($3 report type, date ranges $2) of every account on
-- platform $1, up to $4; accounts a reconnect must cure first are left out.
SELECT p.tenant_id, p.account_id, r.date_range
FROM platform_credentials p
CROSS JOIN unnest($2::text[]) AS r(date_range)
WHERE p.platform = $1 AND coalesce(p.last_error_code, '') NOT IN ('token_revoked', 'credential_unreadable')
  AND NOT EXISTS (
      SELECT 1 FROM metric_cache c
      WHERE c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
        AND c.report_type = $3 AND c.date_range = r.date_range)
LIMIT $4
