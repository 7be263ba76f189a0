-- deneva secrets rotate-kek: the next $3 credentials after id $2 whose data key is not
-- wrapped under KEK $1, locked for the batch's transaction (a token refresh of one of
-- them waits until the batch is re-wrapped, then writes as usual).
SELECT id, tenant_id, platform, account_id, wrapped_key, kek_id, refresh_token_ct, access_token_ct
FROM platform_credentials
WHERE id > $2 AND kek_id IS DISTINCT FROM $1 AND wrapped_key IS NOT NULL
ORDER BY id
LIMIT $3
FOR UPDATE
