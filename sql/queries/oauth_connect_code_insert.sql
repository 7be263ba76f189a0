INSERT INTO oauth_connect_codes (code_hash, tenant_id, expires_at) VALUES ($1, $2, $3)
