-- The account-pick form ($1 state hash, $2 platform) posted by the browser that opened
-- the flow ($3 its cookie's hash) with the form's one-time token ($4 its hash), at $5:
-- taken once, to store the chosen accounts.
UPDATE connect_flows AS f SET status = 'storing', updated_at = $5
FROM tenants AS t
WHERE f.state_hash = $1 AND f.platform = $2 AND f.status = 'consented' AND f.browser_hash = $3
  AND f.form_hash = $4 AND f.expires_at > $5 AND t.id = f.tenant_id
RETURNING f.id, f.tenant_id, t.name AS tenant, f.operator, f.wrapped_key, f.kek_id, f.grant_ct,
          f.reachable, f.expires_at
