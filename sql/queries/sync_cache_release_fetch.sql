-- The fetch of a report ($2) is over: others need not wait for it.
DELETE FROM metric_cache_fetches WHERE tenant_id = $1 AND cache_key = $2
