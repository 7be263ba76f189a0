-- deneva connect, first step for an account that has a credential: its row, locked
-- until the new tokens are stored.
SELECT id FROM platform_credentials WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 FOR UPDATE
