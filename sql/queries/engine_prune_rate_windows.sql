-- Delete up to $2 rate-limit windows that started before $1.
WITH gone AS (
    DELETE FROM engine_rate_windows w WHERE (w.key, w.window_start) IN (
        SELECT key, window_start FROM engine_rate_windows WHERE window_start < $1
        ORDER BY window_start LIMIT $2
    )
    RETURNING 1
)
SELECT count(*) FROM gone
