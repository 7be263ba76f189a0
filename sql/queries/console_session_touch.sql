-- Console session $1 was used at $2 (its idle time starts again).
UPDATE admin_sessions SET last_seen_at = greatest(last_seen_at, $2) WHERE id = $1
