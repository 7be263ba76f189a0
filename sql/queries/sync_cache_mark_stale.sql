-- Mark every cached report of one account stale (sync exhaustion).
UPDATE metric_cache SET is_stale = true WHERE tenant_id = $1 AND platform = $2 AND account_id = $3
