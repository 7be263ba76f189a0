-- The last sync_log failure of one refresh run: why refresh_report or a tool's miss failed.
SELECT error_code, error_message FROM sync_log
WHERE tenant_id = $1 AND run_id = $2 AND outcome <> 'success'
ORDER BY id DESC
LIMIT 1
