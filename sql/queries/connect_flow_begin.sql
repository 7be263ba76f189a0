-- deneva connect (no token file): a new flow for tenant $2 on platform $3, started by
-- operator $4 with accounts $5 pre-selected (--account) and PKCE verifier $6; issued at $7,
-- it expires at $8. Only the state's hash ($1) is kept.
INSERT INTO connect_flows (state_hash, tenant_id, platform, operator, preselected, code_verifier,
                           created_at, expires_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7)
RETURNING id
