-- Credentials of platforms $2 due for their eager refresh at $1: the access token expires
-- within its platform's margin ($3: seconds per platform, as JSON). Up to $4, soonest
-- first. Also the earliest due time after $1 among the others (the next deadline).
WITH refreshable AS (
    SELECT id, platform, access_token_expires_at AS expires_at,
           access_token_expires_at - make_interval(secs => ($3::jsonb ->> platform)::float8) AS due_at
    FROM platform_credentials
    WHERE platform = ANY($2::text[]) AND access_token_expires_at IS NOT NULL
      AND coalesce(last_error_code, '') NOT IN ('token_revoked', 'credential_unreadable')
)
SELECT id, platform, (extract(epoch FROM expires_at) * 1000)::bigint AS expires_ms,
       NULL::timestamptz AS next_due
FROM (SELECT * FROM refreshable WHERE due_at <= $1 ORDER BY due_at LIMIT $4) AS due
UNION ALL
SELECT NULL::uuid, NULL::text, NULL::bigint, min(due_at) FROM refreshable WHERE due_at > $1
