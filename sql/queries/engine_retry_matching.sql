-- Queue again now ($6), with fresh attempts, at most $7 failed or cancelled runs matching
-- a filter (as engine_find_runs: $1 statuses, $2 function id, $3 event data, $4..$5 the
-- window of their finish), the latest finished first; their recorded steps are kept (each
-- resumes). One statement: rows another transaction holds are skipped. Their ids.
WITH chosen AS (
    SELECT id FROM engine_runs
    WHERE status IN ('failed', 'cancelled') AND status = ANY($1::text[]) AND finished_at IS NOT NULL
      AND ($2::text IS NULL OR function_id = $2) AND ($3::jsonb IS NULL OR event->'data' @> $3)
      AND finished_at >= $4 AND finished_at < $5
    ORDER BY finished_at DESC, id DESC
    LIMIT $7
    FOR UPDATE SKIP LOCKED
)
UPDATE engine_runs r SET status = 'queued', attempt = 0, run_at = $6, finished_at = NULL,
       cancel_requested = false
FROM chosen
WHERE r.id = chosen.id
RETURNING r.id
