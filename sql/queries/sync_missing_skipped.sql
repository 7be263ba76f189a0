-- Reports never fetched yet ($3 report type, date ranges $2) on platform $1 that are not
-- fetched because their account waits for a reconnect, counted by why.
SELECT CASE p.last_error_code WHEN 'token_revoked' THEN 'revoked' ELSE 'unhealthy' END AS reason,
       count(*) AS n
FROM platform_credentials p
CROSS JOIN unnest($2::text[]) AS r(date_range)
WHERE p.platform = $1 AND p.last_error_code IN ('token_revoked', 'credential_unreadable')
  AND NOT EXISTS (
      SELECT 1 FROM metric_cache c
      WHERE c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
        AND c.report_type = $3 AND c.date_range = r.date_range)
GROUP BY 1
