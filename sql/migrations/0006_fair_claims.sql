-- Fair claims (issue 11): runs with a concurrency key are claimed per key, each key's
-- earliest runs up to its free slots, so one key's backlog never hides another's runs.
-- The claim walks the keys that have runs waiting (a loose scan of this index) and
-- takes each one's head; the index in priority order across keys is no longer read.
--
-- Keys longer than 200 characters are stored hashed (deneva.engine.functions.stored_key:
-- the first 80 characters, U+001F and the SHA-256 of the whole, in hex). Before, a run
-- planned with a 3 KB key was stored, and every claim then failed on its key row
-- (too large for the index); such runs get the hashed form here, before the new index
-- on the key is built.
UPDATE engine_runs
SET concurrency_key = left(concurrency_key, 80) || chr(31)
    || encode(sha256(convert_to(concurrency_key, 'UTF8')), 'hex')
WHERE concurrency_key IS NOT NULL
  AND (length(concurrency_key) > 200 OR strpos(concurrency_key, chr(31)) > 0);
DROP INDEX engine_runs_due_keyed;
-- The length bound keeps out the versions of those rows from before the UPDATE (still in
-- the heap in this transaction, and indexed by a build unless its predicate excludes
-- them); the claim's statements repeat it, so that they can use the index.
CREATE INDEX engine_runs_due_by_key ON engine_runs (concurrency_key, priority DESC, run_at)
    WHERE status IN ('queued', 'sleeping', 'waiting') AND concurrency_key IS NOT NULL
      AND length(concurrency_key) <= 200;
