-- The code and its grant, locked: two exchanges of one code serialize here.
SELECT c.code_hash, c.redirect_uri, c.code_challenge, c.expires_at, c.used_at,
       g.id AS grant_id, g.tenant_id, g.client_id, g.scope, g.resource, g.revoked_at AS grant_revoked_at
FROM oauth_codes c
JOIN oauth_grants g ON g.id = c.grant_id
WHERE c.id = $1
FOR UPDATE OF c
