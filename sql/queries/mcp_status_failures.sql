-- get_sync_status: a tenant's sync failures since $4, the latest first.
SELECT platform, account_id, report_type, date_range, attempt, outcome, error_code, error_message, created_at
FROM sync_log
WHERE tenant_id = $1 AND ($2::text IS NULL OR platform = $2)
  AND outcome <> 'success' AND created_at > $4
ORDER BY id DESC
LIMIT $3
