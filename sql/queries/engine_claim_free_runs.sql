-- Claim up to $2 due runs ($1 now) without a concurrency key for owner $3, each with a
-- lease token of its own, leased until $4 (NULL: $5 seconds on the database's clock):
-- one statement. Paused functions (and everything, while '*' is paused) are skipped.
-- Its UPDATE ... RETURNING is engine_start_chosen_runs.sql's: keep the two in step (the claim reads both alike).
WITH paused AS (
    SELECT coalesce(array_agg(function_id), '{}') AS ids FROM engine_paused
), picked AS (
    SELECT r.id, r.status, r.started_at FROM engine_runs r, paused
    WHERE r.status IN ('queued', 'sleeping', 'waiting') AND r.run_at <= $1 AND r.concurrency_key IS NULL
      AND NOT ('*' = ANY(paused.ids)) AND r.function_id <> ALL(paused.ids)
    ORDER BY r.priority DESC, r.run_at
    LIMIT $2
    FOR UPDATE OF r SKIP LOCKED
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
