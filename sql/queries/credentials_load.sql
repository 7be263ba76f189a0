-- One account's sealed credential, with the version a token write must match.
SELECT id, wrapped_key, kek_id, refresh_token_ct, access_token_ct, access_token_expires_at, token_version,
       login_customer_id
FROM platform_credentials WHERE tenant_id = $1 AND platform = $2 AND account_id = $3
