-- Resume $1 ('*': the whole engine); returns 1 if it was paused.
DELETE FROM engine_paused WHERE function_id = $1 RETURNING 1
