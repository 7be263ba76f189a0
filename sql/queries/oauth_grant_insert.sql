INSERT INTO oauth_grants (tenant_id, client_id, scope, resource, granted_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
