-- When the next run falls due after $1 (the dispatcher sleeps until then at most).
SELECT min(run_at) FROM engine_runs WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at > $1
