-- For /metrics ($1 now): due runs waiting to start, the age of the oldest one (the lag),
-- and the runs not finished per status.
SELECT
    (SELECT count(*) FROM engine_runs
     WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1) AS due,
    (SELECT extract(epoch FROM $1 - min(run_at)) FROM engine_runs
     WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1) AS oldest_due_age_s,
    (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM (
        SELECT status, count(*) AS n FROM engine_runs
        WHERE status IN ('queued', 'running', 'sleeping', 'waiting') GROUP BY status) AS s) AS by_status
