-- The browser opens the printed link ($1 state hash, $2 platform, $4 now): the first one to
-- do so binds the flow to itself ($3, the hash of its cookie); a flow opens once.
UPDATE connect_flows SET status = 'started', browser_hash = $3, updated_at = $4
WHERE state_hash = $1 AND platform = $2 AND status = 'issued' AND expires_at > $4
RETURNING id, code_verifier
