-- Pause $1 ('*': the whole engine) at $2 by $3; pausing twice keeps the first time.
INSERT INTO engine_paused (function_id, paused_at, paused_by) VALUES ($1, $2, $3)
ON CONFLICT (function_id) DO NOTHING
