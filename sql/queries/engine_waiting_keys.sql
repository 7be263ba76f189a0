-- Up to $2 concurrency keys, after $1 in key order, that have runs queued, sleeping or
-- waiting (due or not), with their limit: a loose scan of engine_runs_due_by_key, one
-- index probe per key however many runs each has waiting.
WITH RECURSIVE keys (key, n) AS (
    (SELECT concurrency_key, 1 FROM engine_runs
     WHERE status IN ('queued', 'sleeping', 'waiting') AND concurrency_key IS NOT NULL
       AND length(concurrency_key) <= 200
       AND concurrency_key > $1
     ORDER BY concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT r.concurrency_key FROM engine_runs r
            WHERE r.status IN ('queued', 'sleeping', 'waiting') AND r.concurrency_key IS NOT NULL
              AND length(r.concurrency_key) <= 200
              AND r.concurrency_key > keys.key
            ORDER BY r.concurrency_key LIMIT 1), n + 1
    FROM keys WHERE keys.key IS NOT NULL AND keys.n < $2
)
SELECT keys.key, head.concurrency_limit
FROM keys
CROSS JOIN LATERAL (
    SELECT concurrency_limit FROM engine_runs
    WHERE concurrency_key = keys.key AND status IN ('queued', 'sleeping', 'waiting')
      AND length(concurrency_key) <= 200
    LIMIT 1
) AS head
WHERE keys.key IS NOT NULL
ORDER BY keys.key
