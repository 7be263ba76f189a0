-- Store a fetched report: fresh, not stale, due for its eager refresh at $9.
INSERT INTO metric_cache (tenant_id, platform, account_id, report_type, date_range, payload,
                          fetched_at, expires_at, refresh_at, is_stale)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false)
ON CONFLICT (tenant_id, platform, account_id, report_type, date_range) DO UPDATE SET
    payload = excluded.payload, fetched_at = excluded.fetched_at,
    expires_at = excluded.expires_at, refresh_at = excluded.refresh_at, is_stale = false
