-- Give back runs $1 that owner $2 claimed but did not finish (shutdown): resumable at
-- once ($3 now) by any replica.
UPDATE engine_runs SET status = 'sleeping', run_at = $3, lease_owner = NULL, lease_expires_at = NULL
WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND status = 'running'
RETURNING id
