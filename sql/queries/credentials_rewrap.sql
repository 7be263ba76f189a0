-- deneva secrets rotate-kek: credentials $2 re-wrapped under KEK $1 (their tokens
-- re-sealed too when they were in the format before migration 0007). Not a token change:
-- the token version stays, so a refresh under way still writes its tokens.
UPDATE platform_credentials AS p
SET wrapped_key = r.wrapped_key, kek_id = $1, refresh_token_ct = r.refresh_token_ct,
    access_token_ct = r.access_token_ct
FROM unnest($2::uuid[], $3::bytea[], $4::bytea[], $5::bytea[])
    AS r (id, wrapped_key, refresh_token_ct, access_token_ct)
WHERE p.id = r.id
