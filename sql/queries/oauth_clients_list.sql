SELECT c.client_id, c.kind, c.client_name, c.redirect_uris, c.auth_method, c.created_at, c.revoked_at,
       count(g.id) FILTER (WHERE g.revoked_at IS NULL) AS active_grants
FROM oauth_clients c
LEFT JOIN oauth_grants g ON g.client_id = c.client_id
GROUP BY c.client_id
ORDER BY c.created_at, c.client_id
