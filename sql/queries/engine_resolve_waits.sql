-- New events ($1 names, $2 documents, in order) resolve the waits they match ($3 now):
-- each wait takes its first matching event as its step's result, and its run resumes.
WITH ev AS (
    SELECT name, doc, ord FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS e(name, doc, ord)
), hit AS (
    SELECT DISTINCT ON (w.run_id, w.step_id) w.run_id, w.step_id, e.doc
    FROM engine_waits w
    JOIN ev e ON e.name = w.event_name
             AND (w.match_path IS NULL OR e.doc #> w.match_path = w.match_value)
    WHERE w.expires_at IS NULL OR w.expires_at > $3
    ORDER BY w.run_id, w.step_id, e.ord
), gone AS (
    DELETE FROM engine_waits w USING hit
    WHERE w.run_id = hit.run_id AND w.step_id = hit.step_id
    RETURNING w.run_id, w.step_id, hit.doc
), recorded AS (
    INSERT INTO engine_steps (run_id, step_id, output, completed_at)
    SELECT run_id, step_id, jsonb_build_object('event', doc), $3 FROM gone
    ON CONFLICT DO NOTHING
    RETURNING run_id
)
UPDATE engine_runs r SET status = 'sleeping', run_at = $3
FROM gone WHERE r.id = gone.run_id AND r.status = 'waiting'
RETURNING r.id
