UPDATE oauth_codes SET used_at = $2 WHERE id = $1
