-- Start the runs $2, chosen under their concurrency keys' locks ($1 now, owner $3,
-- lease until $4, or NULL: $5 seconds on the database's clock), each with a lease token.
-- Its UPDATE ... RETURNING is engine_claim_free_runs.sql's: keep the two in step (the claim reads both alike).
WITH picked AS (
    SELECT id, status, started_at FROM engine_runs WHERE id = ANY($2::uuid[])
)
UPDATE engine_runs r
SET status = 'running',
    attempt = CASE WHEN r.status = 'queued' THEN r.attempt + 1 ELSE r.attempt END,
    lease_owner = $3, lease_token = gen_random_uuid(),
    lease_expires_at = coalesce($4::timestamptz, now() + make_interval(secs => $5::float8)),
    started_at = coalesce(r.started_at, $1)
FROM picked WHERE r.id = picked.id
RETURNING r.id, r.function_id, r.event, r.attempt, r.max_attempts, r.created_at, picked.status AS was,
          picked.started_at IS NULL AS fresh, r.lease_token
