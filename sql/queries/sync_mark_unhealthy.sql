-- A refresh failed for good ($4 now, code $5): the credential is unhealthy.
UPDATE platform_credentials SET healthy = false, last_sync_failure_at = $4, last_error_code = $5,
       updated_at = $4
WHERE tenant_id = $1 AND platform = $2 AND account_id = $3
