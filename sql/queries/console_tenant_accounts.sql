-- The accounts tenant $1 has connected on platform $2 (what a refresh covers).
SELECT account_id FROM platform_credentials WHERE tenant_id = $1 AND platform = $2 ORDER BY account_id
