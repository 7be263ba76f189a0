INSERT INTO oauth_codes (id, code_hash, grant_id, redirect_uri, code_challenge, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
