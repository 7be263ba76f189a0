-- A run's status changes when it is claimed and when it ends, and such an update (not a
-- HOT one: status is in the partial indexes' predicates) adds an entry to every index of
-- the table that does not exclude the new row. engine_runs_function (function_id,
-- created_at) excluded none: two entries per run that only `deneva runs --function`
-- read (the listing now scans, as it does without a function). Dropping it saves about
-- 4 us of Postgres CPU per no-op run (of about 35) in `deneva bench engine` (2-core VM,
-- 2026-12-03).
DROP INDEX IF EXISTS engine_runs_function;
