-- Every connected account of a tenant with its cached account health over one date range
-- (NULL when not cached yet): the portfolio overview's one read, the numbers only.
SELECT p.platform, p.account_id, p.healthy, p.last_error_code,
       c.payload -> 'totals' AS totals,
       c.payload -> 'previous_totals' AS previous_totals,
       c.payload -> 'previous_period' ->> 'coverage' AS coverage,
       c.payload ->> 'currency' AS currency,
       c.fetched_at, c.expires_at, c.is_stale
FROM platform_credentials p
LEFT JOIN metric_cache c
       ON c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
      AND c.report_type = 'account_health' AND c.date_range = $2
WHERE p.tenant_id = $1
ORDER BY p.platform, p.account_id
LIMIT $3
