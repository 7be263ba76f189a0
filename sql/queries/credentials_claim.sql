-- deneva connect, first step: a new, empty row for a tenant's credential for one account
-- (its tokens are sealed next, bound to the row's id, in the same transaction). Its id,
-- nothing when the account has a credential already (credentials_lock finds it).
INSERT INTO platform_credentials (tenant_id, platform, account_id) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, platform, account_id) DO NOTHING
RETURNING id
