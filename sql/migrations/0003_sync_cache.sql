-- Thundering-herd guard for metric_cache misses: the first process to insert the
-- key's row fetches; the others wait for the cache row (or for the claim to expire).
CREATE TABLE metric_cache_fetches (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    cache_key   text NOT NULL,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, cache_key)
);
ALTER TABLE metric_cache_fetches ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON metric_cache_fetches TO deneva_app
    USING (tenant_id = deneva_current_tenant()) WITH CHECK (tenant_id = deneva_current_tenant());
CREATE POLICY system_all ON metric_cache_fetches TO deneva_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON metric_cache_fetches TO deneva_app, deneva_system;
-- Tools read the cache and, on a miss, fill it, as the tenant (row-level security applies).
GRANT INSERT, UPDATE ON metric_cache TO deneva_app;

-- Eager refresh: each row says when to refresh it (80-90 % of its TTL, jittered).
ALTER TABLE metric_cache ADD COLUMN refresh_at timestamptz;
CREATE INDEX metric_cache_refresh_at ON metric_cache (refresh_at);
