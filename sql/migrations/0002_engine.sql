-- The durable job engine: events, runs, steps, waits, cron ticks, concurrency keys,
-- idempotency keys, rate-limit windows. Engine tables are not tenant-scoped: the
-- engine knows nothing of tenants (deneva_system only).

CREATE TABLE engine_events (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    data        jsonb NOT NULL,
    ts          timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX engine_events_name_ts ON engine_events (name, ts);
CREATE INDEX engine_events_received ON engine_events (received_at);

CREATE TABLE engine_runs (
    id                uuid PRIMARY KEY,
    function_id       text NOT NULL,
    status            text NOT NULL CHECK (status IN
                          ('queued', 'running', 'sleeping', 'waiting', 'succeeded', 'failed', 'cancelled')),
    event             jsonb NOT NULL,
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL CHECK (max_attempts >= 1),
    priority          integer NOT NULL DEFAULT 0,
    run_at            timestamptz NOT NULL,
    concurrency_key   text,
    concurrency_limit integer,
    debounce_key      text,
    lease_owner       text,
    lease_expires_at  timestamptz,
    cancel_requested  boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL,
    started_at        timestamptz,
    finished_at       timestamptz,
    last_error        text,
    output            jsonb
);
-- What the dispatcher claims: due runs, best priority first.
-- Two partial indexes, so the common claim (no concurrency key) never wades through keyed runs.
CREATE INDEX engine_runs_due_free ON engine_runs (priority DESC, run_at)
    WHERE status IN ('queued', 'sleeping', 'waiting') AND concurrency_key IS NULL;
CREATE INDEX engine_runs_due_keyed ON engine_runs (priority DESC, run_at)
    WHERE status IN ('queued', 'sleeping', 'waiting') AND concurrency_key IS NOT NULL;
CREATE INDEX engine_runs_next ON engine_runs (run_at) WHERE status IN ('queued', 'sleeping', 'waiting');
CREATE INDEX engine_runs_running ON engine_runs (lease_expires_at) WHERE status = 'running';
CREATE INDEX engine_runs_key_running ON engine_runs (concurrency_key)
    WHERE status = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX engine_runs_function ON engine_runs (function_id, created_at DESC);
CREATE INDEX engine_runs_finished ON engine_runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX engine_runs_debounce ON engine_runs (debounce_key) WHERE status = 'queued' AND debounce_key IS NOT NULL;

CREATE TABLE engine_steps (
    run_id       uuid NOT NULL REFERENCES engine_runs (id) ON DELETE CASCADE,
    step_id      text NOT NULL,
    output       jsonb,
    completed_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, step_id)
);

CREATE TABLE engine_waits (
    run_id        uuid NOT NULL REFERENCES engine_runs (id) ON DELETE CASCADE,
    step_id       text NOT NULL,
    event_name    text NOT NULL,
    match_path    text[],
    match_value   jsonb,
    expires_at    timestamptz,
    PRIMARY KEY (run_id, step_id)
);
CREATE INDEX engine_waits_event ON engine_waits (event_name);

-- Each (function, tick) fires once, whatever the number of schedulers.
CREATE TABLE engine_cron_ticks (
    function_id text NOT NULL,
    tick_at     timestamptz NOT NULL,
    run_id      uuid,
    PRIMARY KEY (function_id, tick_at)
);

-- Serialises claims of runs sharing a concurrency key (one row per key, locked).
CREATE TABLE engine_concurrency_keys (
    key text PRIMARY KEY
);

CREATE TABLE engine_idempotency (
    key        text PRIMARY KEY,
    run_id     uuid NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX engine_idempotency_expires ON engine_idempotency (expires_at);

CREATE TABLE engine_rate_windows (
    key          text NOT NULL,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL,
    PRIMARY KEY (key, window_start)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON
    engine_events, engine_runs, engine_steps, engine_waits, engine_cron_ticks,
    engine_concurrency_keys, engine_idempotency, engine_rate_windows
TO deneva_system;
