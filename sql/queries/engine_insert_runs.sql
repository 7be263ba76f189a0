-- Planned runs without a debounce key, in one statement; wakes the dispatchers.
-- $1..$9 arrays (id, function, event, attempts, priority, run_at, concurrency key and
-- limit, debounce key), $10 now, $11 the NOTIFY channel.
WITH inserted AS (
    INSERT INTO engine_runs (id, function_id, status, event, max_attempts, priority, run_at,
                             concurrency_key, concurrency_limit, debounce_key, created_at)
    SELECT id, function_id, 'queued', event, max_attempts, priority, run_at,
           concurrency_key, concurrency_limit, debounce_key, $10
    FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::timestamptz[],
                $7::text[], $8::int[], $9::text[])
         AS t(id, function_id, event, max_attempts, priority, run_at, concurrency_key,
              concurrency_limit, debounce_key)
    RETURNING 1
)
SELECT pg_notify($11, '') FROM (SELECT 1 FROM inserted LIMIT 1) AS any_inserted
