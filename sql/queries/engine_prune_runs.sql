-- Delete up to $3 runs of status $1 that finished before $2, with their steps (and,
-- by cascade, waits): one bounded statement. Returns how many runs and steps went.
WITH doomed AS (
    SELECT id FROM engine_runs
    WHERE status = $1 AND finished_at < $2
    ORDER BY finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), steps AS (
    DELETE FROM engine_steps s USING doomed WHERE s.run_id = doomed.id RETURNING 1
), runs AS (
    DELETE FROM engine_runs r USING doomed WHERE r.id = doomed.id RETURNING 1
)
SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM steps) AS steps
