-- deneva connect: the claimed row ($1) gets its sealed tokens (data key $2 wrapped under
-- KEK $3) and its manager account for login-customer-id ($8, Google) and becomes healthy; unless it is new ($7), its token version moves on (a
-- refresh that read the old tokens will not write over these); token-refresh actors
-- everywhere re-read their deadlines.
WITH stored AS (
    UPDATE platform_credentials
    SET wrapped_key = $2, kek_id = $3, refresh_token_ct = $4, access_token_ct = $5,
        access_token_expires_at = $6, login_customer_id = $8,
        token_version = token_version + CASE WHEN $7::boolean THEN 0 ELSE 1 END,
        healthy = true, last_error_code = NULL, updated_at = now()
    WHERE id = $1
    RETURNING id
)
SELECT id, pg_notify('deneva_credentials', '') IS NOT NULL AS notified FROM stored
