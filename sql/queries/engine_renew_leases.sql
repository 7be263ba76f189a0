-- Extend the leases ($1 runs, $2 their lease tokens) until $3 (NULL: $4 seconds on the
-- database's clock); returns each renewed run with its cancel flag.
-- Rows locked by someone else are skipped, never waited for: the writers that lock a
-- running run are its completion (which ends the lease anyway) and its step writes;
-- waiting would let a renewal and a batched write lock the same rows in another order.
UPDATE engine_runs r SET lease_expires_at = coalesce($3::timestamptz, now() + make_interval(secs => $4::float8))
FROM (
    SELECT r.id FROM unnest($1::uuid[], $2::uuid[]) AS h (id, token)
    JOIN engine_runs r ON r.id = h.id AND r.lease_token = h.token
    WHERE r.status = 'running'
    ORDER BY r.id
    FOR NO KEY UPDATE OF r SKIP LOCKED
) AS free
WHERE r.id = free.id
RETURNING r.id, r.cancel_requested
