-- Write a batch of transitions, each fenced by its lease token ($1 runs, $2 tokens, $3
-- now): a run whose cancellation was requested and that would go on (queued, sleeping,
-- waiting) is cancelled instead. Returns each written run's final status; the rows that
-- depend on it (a sleep's step, a wait) are written after, for these runs only.
-- The rows are locked first, in id order (every batch that writes runs does so), so two
-- batches sharing runs cannot lock them in opposite orders and deadlock; the locked rows
-- carry their transitions to the update (one join, not two).
WITH mine AS (
    SELECT t.* FROM unnest($1::uuid[], $2::uuid[], $4::text[], $5::timestamptz[], $6::jsonb[],
                           $7::text[], $8::timestamptz[], $9::text[])
                    AS t(id, token, status, run_at, output, error, finished_at, traceback)
    JOIN engine_runs r ON r.id = t.id AND r.lease_token = t.token
    WHERE r.status = 'running'
    ORDER BY r.id
    FOR NO KEY UPDATE OF r
)
UPDATE engine_runs r
SET status = CASE WHEN r.cancel_requested AND t.status IN ('queued', 'sleeping', 'waiting')
                  THEN 'cancelled' ELSE t.status END,
    run_at = coalesce(t.run_at, r.run_at),
    output = t.output,
    last_error = coalesce(t.error, r.last_error),
    last_traceback = coalesce(t.traceback, r.last_traceback),
    finished_at = CASE WHEN r.cancel_requested AND t.status IN ('queued', 'sleeping', 'waiting')
                       THEN $3 ELSE t.finished_at END,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
FROM mine t
WHERE r.id = t.id
RETURNING r.id, r.status
