-- How flow $1 stands (what `deneva connect` waits for).
SELECT status, outcome, connected, expires_at FROM connect_flows WHERE id = $1
