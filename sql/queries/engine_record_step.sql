-- One step's result ($1 run, $2 step, $3 output, $4 time); a recorded step stays.
INSERT INTO engine_steps (run_id, step_id, output, completed_at) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
