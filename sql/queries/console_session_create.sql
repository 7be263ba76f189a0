-- A console session signed in at $3 as role $2, ending at $4 ($1: its secret's SHA-256).
INSERT INTO admin_sessions (secret_hash, role, created_at, last_seen_at, expires_at)
VALUES ($1, $2, $3, $3, $4)
RETURNING id
