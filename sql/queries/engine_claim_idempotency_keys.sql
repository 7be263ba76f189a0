-- Idempotency keys ($1) for runs ($2) until ($3); an expired key ($4 now) is taken over.
-- Returns the runs that won their key.
INSERT INTO engine_idempotency (key, run_id, expires_at)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[])
ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
    WHERE engine_idempotency.expires_at <= $4
RETURNING run_id
