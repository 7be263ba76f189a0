-- Least privilege (issue 11): the daemon's pool logs in as a role of its own, never as
-- the tables' owner or a superuser, so nothing it runs can step around row-level security.
--
-- The login: any role with LOGIN that is a member of deneva_system and nothing more (the
-- embedded Postgres makes `deneva_daemon`; with an external Postgres the operator creates
-- it, see docs/deploy-systemd.md). Its pooled connections SET ROLE deneva_system, and
-- tenant transactions deneva_app; a RESET ROLE leaves it with no more than that login's
-- own rights (NOINHERIT: none), and it cannot become the owner. The daemon refuses to
-- start on a login that is a superuser, has BYPASSRLS or can act as the owner.
--
-- The owner no longer belongs to deneva_system (0001 made it a member so that its own
-- pool could switch roles): with FORCE ROW LEVEL SECURITY below, an owner connection (the
-- migrations, a psql session) sees no tenant rows at all, since no policy names it.

REVOKE deneva_system FROM CURRENT_USER;

-- The policies bind the tables' owner too (a superuser still bypasses them).
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'api_keys', 'platform_credentials', 'metric_cache',
                             'metric_cache_fetches', 'sync_log', 'audit_log', 'audit_log_archive']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END
$$;

-- The archive is read by the daemon's own work only (deneva_app has no grant on it).
CREATE POLICY system_all ON audit_log_archive TO deneva_system USING (true);

-- deneva_archive_audit_log (0001) runs as its owner, so that the daemon's roles never
-- delete from audit_log themselves. Its owner may move audit rows while it runs, and only
-- then: the function turns deneva.archiving on for the rows it moves, and off again.
CREATE OR REPLACE FUNCTION deneva_archive_audit_log(cutoff timestamptz, batch integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
    AS $$
    DECLARE
        moved_rows bigint;
    BEGIN
        PERFORM set_config('deneva.archiving', 'on', true);
        WITH moved AS (
            DELETE FROM audit_log
            WHERE id IN (SELECT id FROM audit_log WHERE created_at < cutoff ORDER BY id LIMIT batch)
            RETURNING id, tenant_id, event_type, outcome, actor, details, created_at
        ), archived AS (
            INSERT INTO audit_log_archive (id, tenant_id, event_type, outcome, actor, details, created_at)
            SELECT * FROM moved
            RETURNING 1
        )
        SELECT count(*) INTO moved_rows FROM archived;
        PERFORM set_config('deneva.archiving', '', true);
        RETURN moved_rows;
    END
    $$;
DO $$
DECLARE
    archivist text := (
        SELECT pg_get_userbyid(proowner) FROM pg_proc
        WHERE oid = 'deneva_archive_audit_log(timestamptz, integer)'::regprocedure
    );
    archiving text := $q$current_setting('deneva.archiving', true) = 'on'$q$;
BEGIN
    EXECUTE format('CREATE POLICY archiving ON audit_log TO %I USING (%s)', archivist, archiving);
    EXECUTE format(
        'CREATE POLICY archiving ON audit_log_archive TO %I USING (%s) WITH CHECK (%s)',
        archivist, archiving, archiving);
END
$$;

-- Envelope encryption (deneva.credentials): the id of the key-encryption key that wraps
-- each row's data key, so keys can rotate (`deneva secrets rotate-kek`). NULL: a row
-- sealed before this migration (the data key's wrap not yet bound to its row).
ALTER TABLE platform_credentials ADD COLUMN kek_id text;
