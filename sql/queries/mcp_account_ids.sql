-- The connected account ids of a tenant on one platform, for the message when accountId is not one of them.
SELECT account_id FROM platform_credentials WHERE tenant_id = $1 AND platform = $2
ORDER BY account_id LIMIT $3
