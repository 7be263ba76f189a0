-- A DCR client (a new random id, never a conflict) or a Client ID Metadata Document's
-- latest copy (replacing the last one, unless the client was revoked: then nothing).
INSERT INTO oauth_clients (client_id, kind, client_name, redirect_uris, auth_method, secret_hash, metadata)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (client_id) DO UPDATE
    SET client_name = excluded.client_name,
        redirect_uris = excluded.redirect_uris,
        auth_method = excluded.auth_method,
        metadata = excluded.metadata
    WHERE oauth_clients.kind = 'cimd' AND excluded.kind = 'cimd' AND oauth_clients.revoked_at IS NULL
RETURNING client_id
