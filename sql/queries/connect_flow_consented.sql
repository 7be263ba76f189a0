-- Flow $1 exchanged its code: the grant sealed (data key $2 under KEK $3, tokens $4), the
-- accounts it reaches ($5) and the account-pick form's one-time token hash ($6), at $7.
UPDATE connect_flows
SET status = 'consented', wrapped_key = $2, kek_id = $3, grant_ct = $4, reachable = $5, form_hash = $6,
    code_verifier = NULL, updated_at = $7
WHERE id = $1 AND status = 'exchanging'
