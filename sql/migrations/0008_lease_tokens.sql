-- Lease fencing (issue 11): each claim gives a run a lease token of its own, and every
-- write a worker makes for the run (lease renewal, steps, waits and sleeps, its outcome,
-- giving it back) is fenced by that token, not by the worker's name: a worker whose
-- lease expired and whose run was claimed again, even by the same process, writes
-- nothing. Lease expiry is kept on the database's clock.
ALTER TABLE engine_runs ADD COLUMN lease_token uuid;
