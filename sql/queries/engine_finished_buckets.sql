-- Finished runs since $1 in buckets of $2 seconds (the bucket's start, in seconds since
-- the epoch), by status: an index-only range scan of engine_runs_finished per status.
SELECT (floor(extract(epoch FROM finished_at) / $2) * $2)::bigint AS bucket,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled
FROM engine_runs
WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at IS NOT NULL AND finished_at >= $1
GROUP BY 1
ORDER BY 1
