-- Which tenant, platform and account credential $1 belongs to.
SELECT tenant_id, platform, account_id FROM platform_credentials WHERE id = $1
