-- Operations (issue 10): the rollback lever, tracebacks on run records, token refresh
-- that is serialised and compare-and-set, and the indexes the janitor's passes use.

-- Paused functions (seed 003's rollback lever); the row '*' pauses the whole engine.
-- Every replica's claim reads this table in the claim's own statement, so a pause is
-- obeyed by all of them from the moment it commits.
CREATE TABLE engine_paused (
    function_id text PRIMARY KEY,
    paused_at   timestamptz NOT NULL,
    paused_by   text
);
GRANT SELECT, INSERT, UPDATE, DELETE ON engine_paused TO deneva_system;

-- A failed attempt keeps a bounded copy of its traceback.
ALTER TABLE engine_runs ADD COLUMN last_traceback text;

-- Stored tokens are written only if the credential has not changed since it was read
-- (token_version, bumped by every write), so a refresh never undoes a reconnect.
-- Refreshes of one credential take a lease first (refresh_owner, refresh_until), so
-- the eager refresh and the adapters' lazy refresh never run at once, in any process.
ALTER TABLE platform_credentials
    ADD COLUMN token_version bigint NOT NULL DEFAULT 1,
    ADD COLUMN refresh_owner text,
    ADD COLUMN refresh_until timestamptz;
-- The token-refresh actor sleeps until the earliest expiry of a refreshable token.
CREATE INDEX platform_credentials_refreshable ON platform_credentials (access_token_expires_at)
    WHERE access_token_expires_at IS NOT NULL AND platform IN ('google', 'meta');

-- The janitor's bounded deletes, oldest first. Finished runs are pruned per status, oldest
-- first, a statement at a time: an index on (status, finished_at) lets each statement
-- stop at its limit (with finished_at alone the planner reads every old run per
-- statement, quadratic over a backlog). It replaces 0002's finished_at index, which
-- nothing else reads, so a completion still writes one index entry for it.
DROP INDEX engine_runs_finished;
CREATE INDEX engine_runs_finished ON engine_runs (status, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX metric_cache_fetched ON metric_cache (fetched_at);
CREATE INDEX engine_cron_ticks_at ON engine_cron_ticks (tick_at);
CREATE INDEX engine_rate_windows_start ON engine_rate_windows (window_start);
