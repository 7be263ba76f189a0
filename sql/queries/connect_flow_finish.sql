-- Flow $1 ends ($2 'connected' or 'failed', why $3, accounts stored $4, at $5): whatever
-- secret it held is wiped. A flow that ended already stays as it ended.
UPDATE connect_flows
SET status = $2, outcome = $3, connected = $4, wrapped_key = NULL, kek_id = NULL, grant_ct = NULL,
    form_hash = NULL, code_verifier = NULL, updated_at = $5
WHERE id = $1 AND status NOT IN ('connected', 'failed')
