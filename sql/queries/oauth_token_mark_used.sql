UPDATE oauth_tokens SET used_at = $2 WHERE id = $1
