-- Insert or replace a tenant's credential for one account (deneva connect): the row
-- becomes healthy, its token version moves on (a refresh that read the old tokens will
-- not write over these), and token-refresh actors everywhere re-read their deadlines.
WITH upserted AS (
    INSERT INTO platform_credentials (tenant_id, platform, account_id, wrapped_key, refresh_token_ct,
                                      access_token_ct, access_token_expires_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (tenant_id, platform, account_id) DO UPDATE SET
        wrapped_key = excluded.wrapped_key, refresh_token_ct = excluded.refresh_token_ct,
        access_token_ct = excluded.access_token_ct,
        access_token_expires_at = excluded.access_token_expires_at,
        token_version = platform_credentials.token_version + 1,
        healthy = true, last_error_code = NULL, updated_at = now()
    RETURNING id, (xmax = 0) AS inserted
)
SELECT id, inserted, pg_notify('deneva_credentials', '') IS NOT NULL AS notified FROM upserted
