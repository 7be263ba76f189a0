SELECT status FROM engine_runs WHERE id = $1
