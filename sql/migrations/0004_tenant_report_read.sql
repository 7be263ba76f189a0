-- The MCP report tools' cache read: for a batch of tool calls, each with its own tenant,
-- each call's accounts on a platform with their cache row for the report, in one round
-- trip. Called as a statement of its own (outside any explicit transaction), the function
-- switches to the application role for the rest of that one-statement transaction and,
-- before each call's query, to that call's tenant; so row-level security scopes every
-- query to its own tenant (plpgsql plans each query after the switch, a cached plan is
-- re-planned when the role differs, and the policy reads the tenant setting each time
-- the query runs). The payload comes back as JSON text, which the tools splice into
-- their answer as is. Rows are tagged with the call's position in the arrays (1-based).
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
-- The daemon's pool (deneva_system) calls it; the tenant role cannot.
REVOKE EXECUTE ON FUNCTION deneva_tenant_reports(uuid[], text[], text[], text[], text[], integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION deneva_tenant_reports(uuid[], text[], text[], text[], text[], integer) TO deneva_system;
