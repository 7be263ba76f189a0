-- A new due time ($6) for one report: the eager refresh tries it again then.
UPDATE metric_cache SET refresh_at = $6
WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 AND report_type = $4 AND date_range = $5
