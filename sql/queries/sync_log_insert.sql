-- One attempt of a report refresh: its outcome, duration and error, on the daemon's clock.
INSERT INTO sync_log (tenant_id, platform, account_id, report_type, date_range, run_id, attempt,
                      outcome, duration_ms, error_code, error_message, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
