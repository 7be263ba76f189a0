-- After a success, none of the account's cached reports is stale any more.
UPDATE metric_cache SET is_stale = false
WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 AND is_stale
