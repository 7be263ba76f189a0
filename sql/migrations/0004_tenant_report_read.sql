-- The MCP report tools' cache-hit path in one round trip. Called as a statement of its
-- own (outside any explicit transaction), the function switches to the application role
-- and the caller's tenant for the rest of that one-statement transaction, then reads
-- under row-level security exactly as a tenant_transaction would: plpgsql plans the
-- query after the switch, and a cached plan is re-planned when the role differs.
-- The payload comes back as JSON text, which the tools splice into their answer as is.
CREATE FUNCTION deneva_tenant_report(
    p_tenant uuid, p_platform text, p_report_type text, p_date_range text, p_account text, p_limit integer
)
RETURNS TABLE (
    account_id text, healthy boolean, last_error_code text,
    payload text, fetched_at timestamptz, expires_at timestamptz, is_stale boolean
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('role', 'deneva_app', true), set_config('deneva.tenant_id', p_tenant::text, true);
    RETURN QUERY
    SELECT p.account_id, p.healthy, p.last_error_code,
           c.payload::text, c.fetched_at, c.expires_at, c.is_stale
    FROM platform_credentials p
    LEFT JOIN metric_cache c
           ON c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
          AND c.report_type = p_report_type AND c.date_range = p_date_range
    -- No tenant condition on purpose: row-level security does the filtering.
    WHERE p.platform = p_platform AND (p_account IS NULL OR p.account_id = p_account)
    ORDER BY p.account_id
    LIMIT p_limit;
END
$$;
-- The daemon's pool (deneva_system) calls it; the tenant role cannot.
REVOKE EXECUTE ON FUNCTION deneva_tenant_report(uuid, text, text, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deneva_tenant_report(uuid, text, text, text, text, integer) TO deneva_system;

-- The same read for a batch of tool calls, each with its own tenant, in one round trip:
-- the tenant is switched before each call's query, so row-level security scopes each
-- query to its own tenant (its policy reads the setting each time the query runs).
-- Rows come back tagged with the call's position in the arrays (1-based).
CREATE FUNCTION deneva_tenant_reports(
    p_tenants uuid[], p_platforms text[], p_report_types text[], p_date_ranges text[], p_accounts text[],
    p_limit integer
)
RETURNS TABLE (
    idx integer, account_id text, healthy boolean, last_error_code text,
    payload text, fetched_at timestamptz, expires_at timestamptz, is_stale boolean
)
LANGUAGE plpgsql VOLATILE
AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('role', 'deneva_app', true);
    FOR i IN 1 .. coalesce(array_length(p_tenants, 1), 0) LOOP
        PERFORM set_config('deneva.tenant_id', p_tenants[i]::text, true);
        RETURN QUERY
        SELECT i, p.account_id, p.healthy, p.last_error_code,
               c.payload::text, c.fetched_at, c.expires_at, c.is_stale
        FROM platform_credentials p
        LEFT JOIN metric_cache c
               ON c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
              AND c.report_type = p_report_types[i] AND c.date_range = p_date_ranges[i]
        -- No tenant condition on purpose: row-level security does the filtering.
        WHERE p.platform = p_platforms[i] AND (p_accounts[i] IS NULL OR p.account_id = p_accounts[i])
        ORDER BY p.account_id
        LIMIT p_limit;
    END LOOP;
    PERFORM set_config('deneva.tenant_id', '', true);
END
$$;
REVOKE EXECUTE ON FUNCTION deneva_tenant_reports(uuid[], text[], text[], text[], text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deneva_tenant_reports(uuid[], text[], text[], text[], text[], integer) TO deneva_system;
