-- Runs matching a filter, the latest first, a page at a time (the operator console).
-- $1 statuses (text[]), $2 function id (NULL: any), $3 event data the run's event must
-- contain (jsonb, NULL: any), $4..$5 the window [since, until), $6..$7 the keyset cursor
-- (the last row of the previous page: its time and id), $8 the page size.
--
-- A run's time is when it finished, or, while it is not finished, when it was created.
-- Each branch reads an index in that order and stops at the page size: unfinished runs
-- through the queue's partial indexes (engine_runs_next, engine_runs_running: only the
-- runs not finished), finished ones per status through engine_runs_finished, backwards.
-- The statuses are literals in each branch so the planner can prove the partial
-- indexes' predicates; a branch whose status is not asked for is skipped at once.
SELECT * FROM (
    (SELECT id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at,
            last_error, last_traceback, output, event, created_at AS t
     FROM engine_runs
     WHERE (status IN ('queued', 'sleeping', 'waiting') OR status = 'running') AND status = ANY($1::text[])
       AND ($2::text IS NULL OR function_id = $2) AND ($3::jsonb IS NULL OR event->'data' @> $3)
       AND created_at >= $4 AND created_at < $5 AND created_at <= $6 AND (created_at, id) < ($6, $7)
     ORDER BY created_at DESC, id DESC
     LIMIT $8)
    UNION ALL
    (SELECT id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at,
            last_error, last_traceback, output, event, finished_at AS t
     FROM engine_runs
     WHERE 'succeeded' = ANY($1::text[]) AND status = 'succeeded' AND finished_at IS NOT NULL
       AND ($2::text IS NULL OR function_id = $2) AND ($3::jsonb IS NULL OR event->'data' @> $3)
       AND finished_at >= $4 AND finished_at < $5 AND finished_at <= $6 AND (finished_at, id) < ($6, $7)
     ORDER BY finished_at DESC, id DESC
     LIMIT $8)
    UNION ALL
    (SELECT id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at,
            last_error, last_traceback, output, event, finished_at AS t
     FROM engine_runs
     WHERE 'failed' = ANY($1::text[]) AND status = 'failed' AND finished_at IS NOT NULL
       AND ($2::text IS NULL OR function_id = $2) AND ($3::jsonb IS NULL OR event->'data' @> $3)
       AND finished_at >= $4 AND finished_at < $5 AND finished_at <= $6 AND (finished_at, id) < ($6, $7)
     ORDER BY finished_at DESC, id DESC
     LIMIT $8)
    UNION ALL
    (SELECT id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at,
            last_error, last_traceback, output, event, finished_at AS t
     FROM engine_runs
     WHERE 'cancelled' = ANY($1::text[]) AND status = 'cancelled' AND finished_at IS NOT NULL
       AND ($2::text IS NULL OR function_id = $2) AND ($3::jsonb IS NULL OR event->'data' @> $3)
       AND finished_at >= $4 AND finished_at < $5 AND finished_at <= $6 AND (finished_at, id) < ($6, $7)
     ORDER BY finished_at DESC, id DESC
     LIMIT $8)
) AS page
ORDER BY t DESC, id DESC
LIMIT $8
