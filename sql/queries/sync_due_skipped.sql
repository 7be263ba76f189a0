-- Due reports ($1 now, platforms $2 or all) that are not refreshed, counted by why:
-- revoked (token_revoked) or unhealthy (credential_unreadable): both wait for a reconnect.
SELECT CASE p.last_error_code WHEN 'token_revoked' THEN 'revoked' ELSE 'unhealthy' END AS reason,
       count(*) AS n
FROM metric_cache c
JOIN platform_credentials p
  ON p.tenant_id = c.tenant_id AND p.platform = c.platform AND p.account_id = c.account_id
WHERE c.refresh_at <= $1 AND p.last_error_code IN ('token_revoked', 'credential_unreadable')
  AND ($2::text[] IS NULL OR c.platform = ANY($2::text[]))
GROUP BY 1
