-- Runs executing now per concurrency key ($1).
SELECT concurrency_key, count(*) AS n FROM engine_runs
WHERE status = 'running' AND concurrency_key = ANY($1::text[])
GROUP BY concurrency_key
