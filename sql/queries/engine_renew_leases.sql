-- Extend owner $2's leases on runs $1 until $3; returns each with its cancel flag.
UPDATE engine_runs SET lease_expires_at = $3 WHERE id = ANY($1::uuid[]) AND lease_owner = $2
RETURNING id, cancel_requested
