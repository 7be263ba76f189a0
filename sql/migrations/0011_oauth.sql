-- MCP authorization (issue 14): the built-in OAuth 2.1 authorization server's state.
--
-- oauth_clients         clients registered by RFC 7591 (DCR) or known by a Client ID
--                       Metadata Document (kind 'cimd': client_id is the document's URL,
--                       the row a copy of what was last fetched).
-- oauth_connect_codes   a tenant's one-time connect codes (`deneva oauth code`), hashed.
-- oauth_codes           authorization codes, hashed, single use, bound to the client, the
--                       redirect URI, the PKCE challenge, the scope and the resource.
-- oauth_grants          what a tenant granted a client; revoking it ends every token of it.
-- oauth_tokens          access and refresh tokens of a grant, hashed like API keys; a
--                       refresh token is used once (rotation), a second use revokes its grant.
--
-- Only the daemon's own work (deneva_system) reads or writes them: an OAuth lookup is an
-- authentication, like an API key's, made before any tenant is known.

CREATE TABLE oauth_clients (
    client_id     text PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('dcr', 'cimd')),
    client_name   text,
    redirect_uris text[] NOT NULL,
    auth_method   text NOT NULL CHECK (auth_method IN ('none', 'client_secret_post', 'client_secret_basic')),
    secret_hash   bytea,
    metadata      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE oauth_connect_codes (
    code_hash  bytea PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_connect_codes_expires ON oauth_connect_codes (expires_at);

CREATE TABLE oauth_grants (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    client_id      text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    scope          text NOT NULL,
    resource       text NOT NULL,
    granted_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    revoked_reason text
);
CREATE INDEX oauth_grants_tenant ON oauth_grants (tenant_id);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

CREATE TABLE oauth_codes (
    id             text PRIMARY KEY,
    code_hash      bytea NOT NULL,
    grant_id       uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    redirect_uri   text NOT NULL,
    code_challenge text NOT NULL,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX oauth_codes_grant ON oauth_codes (grant_id);
CREATE INDEX oauth_codes_expires ON oauth_codes (expires_at);

CREATE TABLE oauth_tokens (
    id         text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('access', 'refresh')),
    token_hash bytea NOT NULL,
    grant_id   uuid NOT NULL REFERENCES oauth_grants (id) ON DELETE CASCADE,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
-- The janitor's `janitor-prune-oauth` deletes expired rows in expiry order.
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['oauth_clients', 'oauth_connect_codes', 'oauth_grants', 'oauth_codes',
                             'oauth_tokens']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY system_all ON %I TO deneva_system USING (true) WITH CHECK (true)', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO deneva_system', t);
    END LOOP;
END
$$;
