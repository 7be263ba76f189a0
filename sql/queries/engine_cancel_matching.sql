-- Cancel at most $7 unfinished runs matching a filter (as engine_find_runs: $1 statuses,
-- $2 function id, $3 event data, $4..$5 the window of their creation), the newest first:
-- one not executing is cancelled now ($6) and its waits dropped (as engine_cancel_idle_run);
-- a running one is asked to stop at its next step (its owner learns it when it renews the
-- lease). One statement: rows another transaction holds are skipped. Each run's id and the
-- status it had.
WITH chosen AS (
    SELECT id, status FROM engine_runs
    WHERE (status IN ('queued', 'sleeping', 'waiting') OR status = 'running') AND status = ANY($1::text[])
      AND ($2::text IS NULL OR function_id = $2) AND ($3::jsonb IS NULL OR event->'data' @> $3)
      AND created_at >= $4 AND created_at < $5
    ORDER BY created_at DESC, id DESC
    LIMIT $7
    FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM engine_waits w USING chosen c WHERE w.run_id = c.id AND c.status <> 'running'
), changed AS (
    UPDATE engine_runs r
    SET status = CASE WHEN c.status = 'running' THEN r.status ELSE 'cancelled' END,
        finished_at = CASE WHEN c.status = 'running' THEN r.finished_at ELSE $6 END,
        cancel_requested = true
    FROM chosen c
    WHERE r.id = c.id
    RETURNING r.id, c.status AS was
)
SELECT id, was FROM changed
