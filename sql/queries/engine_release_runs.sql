-- Give back runs $1 (lease tokens $2) claimed but not finished (shutdown): resumable at
-- once ($3 now) by any replica.
UPDATE engine_runs r
SET status = 'sleeping', run_at = $3, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
FROM unnest($1::uuid[], $2::uuid[]) AS h (id, token)
WHERE r.id = h.id AND r.lease_token = h.token AND r.status = 'running'
RETURNING r.id
