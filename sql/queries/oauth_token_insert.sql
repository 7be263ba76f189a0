INSERT INTO oauth_tokens (id, kind, token_hash, grant_id, expires_at) VALUES ($1, $2, $3, $4, $5)
