-- A waiting run ($1) resumes now ($2): its wait was resolved.
UPDATE engine_runs SET status = 'sleeping', run_at = $2 WHERE id = $1 AND status = 'waiting'
