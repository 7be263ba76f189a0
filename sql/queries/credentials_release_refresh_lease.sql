-- Give up owner $4's refresh lease of one account's credential (a refresh that wrote nothing).
UPDATE platform_credentials SET refresh_owner = NULL, refresh_until = NULL
WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 AND refresh_owner = $4
