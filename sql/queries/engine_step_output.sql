-- One recorded step's output.
SELECT output FROM engine_steps WHERE run_id = $1 AND step_id = $2
