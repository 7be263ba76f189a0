-- What is paused ('*': the whole engine), oldest first.
SELECT function_id, paused_at, paused_by FROM engine_paused ORDER BY paused_at, function_id
