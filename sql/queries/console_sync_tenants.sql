-- A page of tenants for the sync matrix, by name after $1 ('' for the first page), only
-- $2 when given, at most $3.
SELECT id, name FROM tenants
WHERE name > $1 AND ($2::text IS NULL OR name = $2)
ORDER BY name
LIMIT $3
