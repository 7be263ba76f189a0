-- Per run of $1: whether its cancellation was requested and whether owner $2 still holds it.
SELECT id, cancel_requested, coalesce(lease_owner = $2, false) AS owned
FROM engine_runs WHERE id = ANY($1::uuid[])
