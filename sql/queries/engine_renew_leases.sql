-- Extend owner $2's leases on runs $1 until $3; returns each with its cancel flag.
-- Rows locked by someone else are skipped, never waited for: the only writer that locks
-- a running run is its completion, which ends the lease anyway; waiting would let a
-- renewal and a batched completion (locking the same rows in another order) deadlock.
UPDATE engine_runs r SET lease_expires_at = $3
FROM (
    SELECT id FROM engine_runs WHERE id = ANY($1::uuid[]) AND lease_owner = $2
    FOR NO KEY UPDATE SKIP LOCKED
) AS free
WHERE r.id = free.id
RETURNING r.id, r.cancel_requested
