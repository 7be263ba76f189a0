-- The console session whose secret hashes to $1, expired or not (the caller says which).
SELECT id, role, created_at, last_seen_at, expires_at FROM admin_sessions WHERE secret_hash = $1
