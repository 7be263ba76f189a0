SELECT created_at FROM engine_runs WHERE id = $1
