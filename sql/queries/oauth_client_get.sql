SELECT client_id, kind, client_name, redirect_uris, auth_method, secret_hash, metadata, revoked_at
FROM oauth_clients
WHERE client_id = $1
