-- The latest recorded tick of each function of $1.
SELECT function_id, max(tick_at) AS last FROM engine_cron_ticks
WHERE function_id = ANY($1::text[])
GROUP BY function_id
