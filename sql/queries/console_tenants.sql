-- A page of tenants by name after $1 ('' for the first page), at most $2, with their
-- active API keys, connected accounts and active OAuth grants counted.
SELECT t.id, t.name, t.created_at,
       (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL) AS keys,
       (SELECT count(*) FROM platform_credentials p WHERE p.tenant_id = t.id) AS accounts,
       (SELECT count(*) FROM oauth_grants g WHERE g.tenant_id = t.id AND g.revoked_at IS NULL) AS grants
FROM tenants t
WHERE t.name > $1
ORDER BY t.name
LIMIT $2
