UPDATE oauth_clients SET revoked_at = coalesce(revoked_at, $2) WHERE client_id = $1 RETURNING client_id
