-- The operator console (issue 15): sessions at /admin/, shared by every replica.
--
-- An operator signs in with DENEVA_ADMIN_TOKEN (role admin) or DENEVA_ADMIN_READONLY_TOKEN
-- (role readonly) and gets a random session secret in an HttpOnly cookie; only its
-- SHA-256 is stored (secret_hash), so the table does not hold what opens a session. The
-- public `id` names the session in the audit log (`console:admin:<first 8 characters>`).
-- A session ends at expires_at, or once unused for the configured idle time (last_seen_at);
-- signing out deletes it, the janitor deletes the expired ones.
CREATE TABLE admin_sessions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    secret_hash  bytea NOT NULL UNIQUE,
    role         text NOT NULL CHECK (role IN ('admin', 'readonly')),
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);
ALTER TABLE admin_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_sessions FORCE ROW LEVEL SECURITY;
-- Only the daemon's own work (deneva_system) signs operators in and out.
CREATE POLICY system_all ON admin_sessions TO deneva_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON admin_sessions TO deneva_system;
