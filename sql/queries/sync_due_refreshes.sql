-- Cached reports due for their eager refresh ($1 now), of platforms $3 (null: all), up
-- to $2, oldest due first; accounts a reconnect must cure first are left out (counted by
-- sync_due_skipped).
SELECT c.tenant_id, c.platform, c.account_id, c.report_type, c.date_range,
       (extract(epoch FROM c.refresh_at) * 1000)::bigint AS due_ms
FROM metric_cache c
JOIN platform_credentials p
  ON p.tenant_id = c.tenant_id AND p.platform = c.platform AND p.account_id = c.account_id
WHERE c.refresh_at <= $1 AND coalesce(p.last_error_code, '') NOT IN ('token_revoked', 'credential_unreadable')
  AND ($3::text[] IS NULL OR c.platform = ANY($3::text[]))
ORDER BY c.refresh_at
LIMIT $2
