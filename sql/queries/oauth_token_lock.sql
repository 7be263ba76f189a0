-- A refresh token and its grant, locked: two uses of one refresh token serialize here.
SELECT t.kind, t.token_hash, t.expires_at, t.used_at, t.revoked_at,
       g.id AS grant_id, g.tenant_id, g.client_id, g.scope, g.resource, g.revoked_at AS grant_revoked_at
FROM oauth_tokens t
JOIN oauth_grants g ON g.id = t.grant_id
WHERE t.id = $1
FOR UPDATE OF t
