-- Fair claims (issue 11): runs with a concurrency key are claimed per key, each key's
-- earliest runs up to its free slots, so one key's backlog never hides another's runs.
-- The claim walks the keys that have runs waiting (a loose scan of this index) and
-- takes each one's head; the index in priority order across keys is no longer read.
DROP INDEX engine_runs_due_keyed;
CREATE INDEX engine_runs_due_by_key ON engine_runs (concurrency_key, priority DESC, run_at)
    WHERE status IN ('queued', 'sleeping', 'waiting') AND concurrency_key IS NOT NULL;
