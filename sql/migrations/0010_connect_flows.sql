-- Browser connect (issue 12): `deneva connect PLATFORM --tenant NAME` without a token
-- file starts a flow; the operator's browser completes it through the platform's consent
-- page and /connect/{platform}/callback. A flow is single-use and lives 10 minutes.
--
-- The URL carries a random state; only its SHA-256 is stored (state_hash), so the table
-- does not hold what opens a flow. The browser that opened the link first gets a cookie
-- whose hash binds the flow (browser_hash), and the account-pick form a one-time token
-- (form_hash). Between the callback and the pick, the grant is sealed as credentials
-- are (a data key wrapped by the KEK, bound to the flow's id), and wiped once the flow
-- ends either way.
CREATE TABLE connect_flows (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    state_hash    bytea NOT NULL UNIQUE,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    platform      text NOT NULL CHECK (platform IN ('google', 'meta', 'tiktok')),
    operator      text NOT NULL,
    preselected   text[] NOT NULL DEFAULT '{}',
    code_verifier text,
    status        text NOT NULL DEFAULT 'issued'
                  CHECK (status IN ('issued', 'started', 'exchanging', 'consented', 'storing',
                                    'connected', 'failed')),
    browser_hash  bytea,
    form_hash     bytea,
    wrapped_key   bytea,
    kek_id        text,
    grant_ct      bytea,
    reachable     jsonb,
    connected     text[],
    outcome       text,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX connect_flows_expires ON connect_flows (expires_at);
ALTER TABLE connect_flows ENABLE ROW LEVEL SECURITY;
ALTER TABLE connect_flows FORCE ROW LEVEL SECURITY;
-- Only the daemon's own work (deneva_system) starts and completes flows.
CREATE POLICY system_all ON connect_flows TO deneva_system USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON connect_flows TO deneva_system;

-- A Google client account reached through a manager account is called with that
-- manager's id as `login-customer-id`: the connect flow records it per credential.
ALTER TABLE platform_credentials ADD COLUMN login_customer_id text;
