-- The platform's callback ($1 state hash, $2 platform) from the browser that opened the
-- flow ($3 its cookie's hash), at $4: taken once, for the code exchange.
UPDATE connect_flows AS f SET status = 'exchanging', updated_at = $4
FROM tenants AS t
WHERE f.state_hash = $1 AND f.platform = $2 AND f.status = 'started' AND f.browser_hash = $3
  AND f.expires_at > $4 AND t.id = f.tenant_id
RETURNING f.id, f.tenant_id, t.name AS tenant, f.operator, f.preselected, f.code_verifier, f.expires_at
