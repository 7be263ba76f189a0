-- The flow with state hash $1, whatever its status (to say why a link does not work).
SELECT id, platform, status, expires_at, outcome FROM connect_flows WHERE state_hash = $1
