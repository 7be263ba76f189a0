-- The runs $1 that still run under leases $2, share-locked in id order until the end
-- of the transaction (their lease cannot be rescued meanwhile), with their cancel flag:
-- a worker writes a step only for these.
SELECT r.id, r.cancel_requested FROM unnest($1::uuid[], $2::uuid[]) AS h (id, token)
JOIN engine_runs r ON r.id = h.id AND r.lease_token = h.token
WHERE r.status = 'running'
ORDER BY r.id
FOR SHARE OF r
