-- Foundation: roles, tenants and the tenant-scoped tables, audit log, heartbeats.
--
-- Roles (cluster-wide, created once):
--   deneva_app    tenant-facing work; row-level security limits it to the tenant in
--                 the transaction setting deneva.tenant_id.
--   deneva_system the daemon's own work across tenants (scheduler, janitor, auth
--                 lookups); a member of deneva_app, with policies that see all rows.
-- Neither can UPDATE or DELETE the audit log; archiving goes through one
-- SECURITY DEFINER function.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deneva_app') THEN
        CREATE ROLE deneva_app NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deneva_system') THEN
        CREATE ROLE deneva_system NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;

GRANT deneva_app TO deneva_system;
GRANT deneva_system TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO deneva_app, deneva_system;

CREATE FUNCTION deneva_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('deneva.tenant_id', true), '')::uuid $$;

CREATE TABLE tenants (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix     text NOT NULL UNIQUE,
    key_hash   bytea NOT NULL,
    label      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE platform_credentials (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id               uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform                text NOT NULL CHECK (platform IN ('google', 'meta', 'tiktok')),
    account_id              text NOT NULL,
    wrapped_key             bytea,
    refresh_token_ct        bytea,
    access_token_ct         bytea,
    access_token_expires_at timestamptz,
    healthy                 boolean NOT NULL DEFAULT true,
    last_sync_failure_at    timestamptz,
    last_error_code         text,
    last_success_at         timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, platform, account_id)
);
CREATE INDEX platform_credentials_expiry ON platform_credentials (access_token_expires_at);

CREATE TABLE metric_cache (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform    text NOT NULL,
    account_id  text NOT NULL,
    report_type text NOT NULL,
    date_range  text NOT NULL,
    payload     jsonb NOT NULL,
    fetched_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    is_stale    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tenant_id, platform, account_id, report_type, date_range)
);
CREATE INDEX metric_cache_expires ON metric_cache (expires_at);

CREATE TABLE sync_log (
    id            bigserial PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform      text NOT NULL,
    account_id    text NOT NULL,
    report_type   text NOT NULL,
    date_range    text NOT NULL,
    run_id        text,
    attempt       integer NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('success', 'failure_retry', 'failure_final')),
    duration_ms   integer NOT NULL,
    error_code    text,
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sync_log_created ON sync_log (created_at);
CREATE INDEX sync_log_key ON sync_log (tenant_id, platform, report_type, created_at);

CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    tenant_id  uuid REFERENCES tenants (id) ON DELETE SET NULL,
    event_type text NOT NULL,
    outcome    text NOT NULL DEFAULT 'success',
    actor      text,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created ON audit_log (created_at);

CREATE TABLE audit_log_archive (
    id         bigint PRIMARY KEY,
    tenant_id  uuid,
    event_type text NOT NULL,
    outcome    text NOT NULL,
    actor      text,
    details    jsonb NOT NULL,
    created_at timestamptz NOT NULL
);

CREATE TABLE heartbeats (
    source       text NOT NULL,
    node         text NOT NULL,
    last_beat_at timestamptz NOT NULL,
    PRIMARY KEY (source, node)
);

-- Row-level security on every tenant-scoped table.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON tenants TO deneva_app USING (id = deneva_current_tenant());
CREATE POLICY system_all ON tenants TO deneva_system USING (true) WITH CHECK (true);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'platform_credentials', 'metric_cache', 'sync_log', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I TO deneva_app '
            'USING (tenant_id = deneva_current_tenant()) WITH CHECK (tenant_id = deneva_current_tenant())', t);
        EXECUTE format('CREATE POLICY system_all ON %I TO deneva_system USING (true) WITH CHECK (true)', t);
    END LOOP;
END
$$;

GRANT SELECT ON tenants TO deneva_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenants TO deneva_system;
GRANT SELECT ON api_keys, platform_credentials, metric_cache, sync_log TO deneva_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys, platform_credentials, metric_cache TO deneva_system;
GRANT SELECT, INSERT, DELETE ON sync_log TO deneva_system;
-- The audit log is INSERT-only for both roles.
GRANT SELECT, INSERT ON audit_log TO deneva_app, deneva_system;
GRANT USAGE ON SEQUENCE audit_log_id_seq, sync_log_id_seq TO deneva_app, deneva_system;
GRANT SELECT ON audit_log_archive TO deneva_system;
GRANT SELECT, INSERT, UPDATE, DELETE ON heartbeats TO deneva_system;
GRANT SELECT ON deneva_meta, deneva_migrations TO deneva_system;

-- Archiving moves rows in one statement (row count preserved), in bounded batches.
CREATE FUNCTION deneva_archive_audit_log(cutoff timestamptz, batch integer) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = public
    AS $$
    WITH moved AS (
        DELETE FROM audit_log
        WHERE id IN (SELECT id FROM audit_log WHERE created_at < cutoff ORDER BY id LIMIT batch)
        RETURNING id, tenant_id, event_type, outcome, actor, details, created_at
    ), archived AS (
        INSERT INTO audit_log_archive (id, tenant_id, event_type, outcome, actor, details, created_at)
        SELECT * FROM moved
        RETURNING 1
    )
    SELECT count(*) FROM archived
    $$;
REVOKE ALL ON FUNCTION deneva_archive_audit_log(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deneva_archive_audit_log(timestamptz, integer) TO deneva_system;
