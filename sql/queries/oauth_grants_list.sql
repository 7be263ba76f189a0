SELECT g.id, t.name AS tenant, g.client_id, c.client_name, g.scope, g.resource, g.granted_by,
       g.created_at, g.revoked_at, g.revoked_reason
FROM oauth_grants g
JOIN tenants t ON t.id = g.tenant_id
JOIN oauth_clients c ON c.client_id = g.client_id
WHERE $1::text IS NULL OR t.name = $1
ORDER BY g.created_at, g.id
