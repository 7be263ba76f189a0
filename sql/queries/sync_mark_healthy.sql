-- A refresh succeeded ($4 now): the credential is healthy, its failure forgotten.
UPDATE platform_credentials SET healthy = true, last_error_code = NULL,
       last_sync_failure_at = NULL, last_success_at = $4, updated_at = $4
WHERE tenant_id = $1 AND platform = $2 AND account_id = $3
