-- The sync attempts of run $5 (a refresh of tenant $1's $2 $3 report, created at $4), in
-- order: each attempt's outcome, duration and error, read through sync_log_key.
SELECT attempt, account_id, date_range, outcome, duration_ms, error_code, error_message, created_at
FROM sync_log
WHERE tenant_id = $1 AND platform = $2 AND report_type = $3 AND created_at >= $4 AND run_id = $5
ORDER BY created_at, id
LIMIT 100
