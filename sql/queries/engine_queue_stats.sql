-- For /metrics: due runs waiting to start ($1 now), the age of the oldest one, and runs
-- per status that are not finished.
SELECT
    (SELECT count(*) FROM engine_runs
     WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1) AS due,
    (SELECT extract(epoch FROM $1 - min(run_at)) FROM engine_runs
     WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1) AS oldest_due_age_s,
    (SELECT count(*) FROM engine_runs WHERE status = 'running') AS running,
    (SELECT count(*) FROM engine_runs WHERE status IN ('sleeping', 'waiting') AND run_at > $1) AS parked
