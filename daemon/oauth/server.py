"""deneva's built-in OAuth 2.1 authorization server, without HTTP: the HTTP layer
(`deneva.http.oauth`) parses requests into calls here and renders what they return.

- Clients: registered by RFC 7591 (`register`) or, when the client id is an https URL,
  known by its Client ID Metadata Document (`deneva.oauth.cimd`, fetched, checked and
  cached). Redirect URIs are compared exactly.
- `/authorize` (`check_authorization`): `response_type=code`, PKCE with S256 only, the
  scope among deneva's, the resource (RFC 8707) this server's MCP URL. Errors that may
  not be sent to the redirect URI (unknown client, bad redirect URI) are `PageError`s,
  shown to the person; the others are `RedirectError`s, sent back with `state` and `iss`.
- Consent (`approve`): the grant is bound to one tenant, named by a connect code or
  chosen by the operator; it returns a single-use authorization code.
- `/token` (`exchange_code`, `refresh`): a code once (a second exchange revokes the
  grant, RFC 6749 §4.1.2); refresh tokens rotate, and a replayed one revokes the grant.
- `/revoke` (`revoke`, RFC 7009).

Secrets are stored hashed; nothing here logs one.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs
from authlib.oauth2.rfc7591 import ClientMetadataClaims
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from deneva.clock import Clock
from deneva.db import Connection, Database
from deneva.oauth import store
from deneva.oauth.model import (
    ACCESS_TTL_S,
    CODE_TTL_S,
    CONNECT_CODE_TTL_S,
    REFRESH_TTL_S,
    AuthorizationRequest,
    Client,
    IssuedTokens,
    OAuthError,
    hash_secret,
    matches,
    new_connect_code,
    new_secret,
    normalize_connect_code,
    parse_scope,
    parse_secret,
)
from deneva.tenants import TenantError, check_tenant_name, list_tenants, tenant_by_name

log = logging.getLogger("deneva.oauth")

MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_STATE_LENGTH = 500
MAX_METADATA_BYTES = 16 * 1024  # of a registration's metadata, as for a metadata document
AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic")
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_PRIVATE_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*\.[a-z0-9+.-]+")  # reverse-DNS, RFC 8252 §7.1

# resolve(client id URL) -> the checked client of its metadata document (OAuthError if none).
ResolveDocument = Callable[[str], Awaitable[Client]]


class PageError(OAuthError):
    """An /authorize error that must not be sent to the redirect URI: shown on a page."""


class RedirectError(OAuthError):
    """An /authorize error sent to the (checked) redirect URI with `state` and `iss`."""

    def __init__(self, error: str, description: str, redirect_uri: str, state: str | None) -> None:
        super().__init__(error, description)
        self.redirect_uri = redirect_uri
        self.state = state


def check_redirect_uri(uri: object) -> str:
    """A redirect URI a client may register: https, http on a loopback host, or a
    private-use (reverse-DNS) scheme; absolute, no fragment."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_LENGTH or not uri.isprintable():
        raise OAuthError("invalid_redirect_uri", "a redirect URI must be a URI of at most 2000 characters")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise OAuthError("invalid_redirect_uri", "a redirect URI is not a valid URI") from None
    if parts.fragment or "#" in uri:
        raise OAuthError("invalid_redirect_uri", "a redirect URI must not have a fragment")
    scheme = parts.scheme.lower()
    if scheme == "https" and host:
        return uri
    if scheme == "http" and host in _LOOPBACK:
        return uri
    if _PRIVATE_SCHEME.fullmatch(scheme) and (parts.path or parts.netloc):
        return uri
    raise OAuthError(
        "invalid_redirect_uri",
        "a redirect URI must be https, http on a loopback address, or a private-use (reverse-DNS) scheme",
    )


def check_client_metadata(
    metadata: object, *, client_id: str, kind: str, secret_hash: bytes | None = None
) -> Client:
    """The client described by RFC 7591 metadata (DCR's request or a metadata document)."""
    if not isinstance(metadata, dict):
        raise OAuthError("invalid_client_metadata", "the client metadata must be a JSON object")
    encoded = json.dumps(metadata)
    if len(encoded) > MAX_METADATA_BYTES:
        raise OAuthError(
            "invalid_client_metadata", f"the client metadata is larger than {MAX_METADATA_BYTES} bytes"
        )
    if "\\u0000" in encoded:  # Postgres stores no NUL in jsonb
        raise OAuthError("invalid_client_metadata", "the client metadata must not contain NUL characters")
    uris = metadata.get("redirect_uris")
    if not isinstance(uris, list) or not uris or len(uris) > MAX_REDIRECT_URIS:
        raise OAuthError(
            "invalid_redirect_uri", f"redirect_uris must list 1 to {MAX_REDIRECT_URIS} redirect URIs"
        )
    redirect_uris = tuple(check_redirect_uri(u) for u in uris)
    default_method = "none" if kind == "cimd" else "client_secret_basic"
    method = metadata.get("token_endpoint_auth_method", default_method)
    allowed = ("none",) if kind == "cimd" else AUTH_METHODS
    if method not in allowed:
        raise OAuthError(
            "invalid_client_metadata", f"token_endpoint_auth_method must be one of {', '.join(allowed)}"
        )
    grant_types = metadata.get("grant_types", ["authorization_code"])
    if not isinstance(grant_types, list) or not set(grant_types) <= {"authorization_code", "refresh_token"}:
        raise OAuthError("invalid_client_metadata", "grant_types may be authorization_code and refresh_token")
    response_types = metadata.get("response_types", ["code"])
    if not isinstance(response_types, list) or not set(response_types) <= {"code"}:
        raise OAuthError("invalid_client_metadata", "response_types may only be code")
    name = metadata.get("client_name")
    if name is not None and (not isinstance(name, str) or len(name) > 200 or not name.isprintable()):
        raise OAuthError(
            "invalid_client_metadata", "client_name must be printable text of at most 200 characters"
        )
    if "scope" in metadata and parse_scope(metadata["scope"]) is None:
        raise OAuthError("invalid_client_metadata", "scope names a scope this server does not offer")
    if kind == "cimd" and ("client_secret" in metadata or "client_secret_expires_at" in metadata):
        raise OAuthError("invalid_client_metadata", "a metadata document must not hold a client secret")
    try:
        ClientMetadataClaims(metadata, {}).validate()
    except Exception as exc:  # authlib's claim errors name the claim, never a value
        raise OAuthError("invalid_client_metadata", str(getattr(exc, "description", None) or exc)) from None
    return Client(client_id, kind, name, redirect_uris, method, secret_hash, metadata)


def is_document_client_id(client_id: str) -> bool:
    return client_id.startswith("https://")


@attrs.frozen(repr=False)
class Registered:
    client: Client
    secret: str | None

    def __repr__(self) -> str:
        return f"Registered(client_id={self.client.client_id!r}, secret=***)"

    def as_json(self, issued_at: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            **{k: v for k, v in self.client.metadata.items() if k not in ("client_secret", "client_id")},
            "client_id": self.client.client_id,
            "client_id_issued_at": int(issued_at),
            "redirect_uris": list(self.client.redirect_uris),
            "token_endpoint_auth_method": self.client.auth_method,
            "grant_types": self.client.metadata.get("grant_types", ["authorization_code"]),
            "response_types": ["code"],
        }
        if self.secret is not None:
            out["client_secret"] = self.secret
            out["client_secret_expires_at"] = 0
        return out


@attrs.frozen
class ClientCredentials:
    """How a client authenticated at /token or /revoke (RFC 6749 §2.3)."""

    client_id: str | None
    secret: str | None = attrs.field(default=None, repr=False)
    method: str = "none"  # none | client_secret_post | client_secret_basic


class AuthorizationServer:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        resolve_document: ResolveDocument | None = None,
        access_ttl_s: float = ACCESS_TTL_S,
        refresh_ttl_s: float = REFRESH_TTL_S,
        code_ttl_s: float = CODE_TTL_S,
    ) -> None:
        self.db = db
        self.clock = clock
        self.resolve_document = resolve_document
        self.access_ttl_s = access_ttl_s
        self.refresh_ttl_s = refresh_ttl_s
        self.code_ttl_s = code_ttl_s

    # -- clients -------------------------------------------------------------------------

    async def register(self, metadata: object) -> Registered:
        """RFC 7591: a new client; a client secret for the confidential auth methods."""
        ident, _ = new_secret("cs")
        client_id = f"dnv_client_{ident}"
        method = metadata.get("token_endpoint_auth_method") if isinstance(metadata, dict) else None
        secret = None if method == "none" else new_secret("cs")[1]
        client = check_client_metadata(
            metadata,
            client_id=client_id,
            kind="dcr",
            secret_hash=None if secret is None else hash_secret(secret),
        )
        await self.db.transaction(lambda conn: self._save_registered(conn, client))
        log.info("OAuth client registered", extra={"client_id": client_id, "auth_method": client.auth_method})
        return Registered(client, secret)

    @staticmethod
    async def _save_registered(conn: Connection, client: Client) -> None:
        await store.save_client(conn, client)
        await store.audit(
            conn,
            None,
            "oauth.client_registered",
            "dcr",
            {"clientId": client.client_id, "name": client.client_name},
        )

    async def client(self, client_id: object) -> Client:
        """The active client `client_id` (a metadata document fetched or read from its cache)."""
        if (
            not isinstance(client_id, str)
            or not client_id
            or len(client_id) > MAX_URI_LENGTH
            or not client_id.isprintable()
        ):
            raise OAuthError("invalid_client", "client_id is missing or malformed", 401)
        if is_document_client_id(client_id):
            if self.resolve_document is None:
                raise OAuthError(
                    "invalid_client", "this server does not accept Client ID Metadata Documents", 401
                )
            client = await self.resolve_document(client_id)
            saved = await self.db.transaction(lambda conn: store.save_client(conn, client))
            if not saved:
                raise OAuthError("invalid_client", "this client was revoked", 401)
            return client
        found = await self.db.run(lambda conn: store.get_client(conn, client_id))
        if found is None or found.revoked:
            raise OAuthError("invalid_client", "unknown or revoked client", 401)
        return found

    async def authenticate_client(self, credentials: ClientCredentials) -> Client:
        """The client of a /token or /revoke request, checked against its registered method."""
        client = await self.client(credentials.client_id)
        if client.auth_method == "none":
            if credentials.secret is not None:
                raise OAuthError("invalid_client", "this client authenticates with no secret", 401)
            return client
        if (
            credentials.secret is None
            or client.secret_hash is None
            or not matches(client.secret_hash, credentials.secret)
        ):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    # -- /authorize ----------------------------------------------------------------------

    async def check_authorization(self, params: Mapping[str, str], resource: str) -> AuthorizationRequest:
        """An authorization request checked against its client; PageError or RedirectError."""
        try:
            client = await self.client(params.get("client_id"))
        except OAuthError as exc:
            raise PageError(exc.error, exc.description) from None
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri not in client.redirect_uris:
            raise PageError("invalid_request", "redirect_uri is not one this client registered")
        assert redirect_uri is not None
        state = params.get("state")
        if state is not None and (len(state) > MAX_STATE_LENGTH or not state.isprintable()):
            # Not echoed back: a state that is not printable text is refused outright.
            raise RedirectError(
                "invalid_request",
                "state must be printable text of at most 500 characters",
                redirect_uri,
                None,
            )

        def refuse(error: str, description: str) -> RedirectError:
            return RedirectError(error, description, redirect_uri, state)

        if params.get("response_type") != "code":
            raise refuse("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge")
        if challenge is None:
            raise refuse("invalid_request", "code_challenge is required (PKCE with S256)")
        if params.get("code_challenge_method") != "S256":
            raise refuse("invalid_request", "code_challenge_method must be S256")
        if not _CHALLENGE.fullmatch(challenge):
            raise refuse("invalid_request", "code_challenge must be 43 base64url characters (S256)")
        scope = parse_scope(params.get("scope"))
        if scope is None:
            raise refuse("invalid_scope", "scope names a scope this server does not offer")
        asked = params.get("resource")
        if asked is not None and asked.rstrip("/") != resource:
            raise refuse("invalid_target", "resource is not this server's MCP endpoint")
        return AuthorizationRequest(client, redirect_uri, scope, state, challenge, resource)

    async def create_connect_code(self, tenant_name: str) -> tuple[str, float]:
        """A tenant's new one-time connect code and when it expires (epoch seconds)."""
        code = new_connect_code()
        expires = self.clock.now() + CONNECT_CODE_TTL_S

        async def insert(conn: Connection) -> None:
            tenant = await tenant_by_name(conn, tenant_name)
            await store.insert_connect_code(
                conn, hash_secret(normalize_connect_code(code) or ""), tenant.id, expires
            )
            await store.audit(conn, tenant.id, "oauth.connect_code_created", "cli", {"expiresAt": expires})

        await self.db.transaction(insert)
        return code, expires

    async def redeem_connect_code(self, text: object) -> uuid.UUID | None:
        """The tenant of a valid connect code, which is used up; None otherwise."""
        code = normalize_connect_code(text)
        if code is None:
            return None
        now = self.clock.now()
        return await self.db.transaction(lambda conn: store.redeem_connect_code(conn, hash_secret(code), now))

    async def tenant_names(self) -> list[str]:
        return [t.name for t in await self.db.run(list_tenants)]

    async def tenant_id(self, name: str) -> uuid.UUID | None:
        """The id of the tenant `name` (the operator's choice), None if there is none."""
        try:
            check_tenant_name(name)
            return (await self.db.run(lambda conn: tenant_by_name(conn, name))).id
        except TenantError:
            return None

    async def approve(self, request: AuthorizationRequest, tenant_id: uuid.UUID, granted_by: str) -> str:
        """A grant of the request's scope to its client for the tenant; the code to redirect with."""
        ident, code = new_secret("ac")
        expires = self.clock.now() + self.code_ttl_s

        async def grant(conn: Connection) -> None:
            grant_id = await store.insert_grant(
                conn, tenant_id, request.client.client_id, request.scope_text, request.resource, granted_by
            )
            await store.insert_code(
                conn,
                ident,
                hash_secret(code),
                grant_id,
                request.redirect_uri,
                request.code_challenge,
                expires,
            )

        await self.db.transaction(grant)
        log.info(
            "OAuth grant approved",
            extra={"client_id": request.client.client_id, "tenant_id": str(tenant_id), "by": granted_by},
        )
        return code

    # -- /token --------------------------------------------------------------------------

    async def exchange_code(
        self, credentials: ClientCredentials, form: Mapping[str, str], resource: str
    ) -> IssuedTokens:
        client = await self.authenticate_client(credentials)
        code = form.get("code")
        ident = parse_secret(code, "ac")
        verifier = form.get("code_verifier")
        if verifier is None or not _VERIFIER.fullmatch(verifier):
            raise OAuthError("invalid_request", "code_verifier is missing or malformed (43-128 characters)")
        if ident is None or code is None:
            raise OAuthError("invalid_grant", "the authorization code is invalid")
        asked = form.get("resource")
        if asked is not None and asked.rstrip("/") != resource:
            raise OAuthError("invalid_target", "resource is not this server's MCP endpoint")
        now = self.clock.now()

        async def exchange(conn: Connection) -> IssuedTokens | str:
            row = await store.lock_code(conn, ident)
            if row is None or not matches(row["code_hash"], code):
                return "the authorization code is invalid"
            if row["client_id"] != client.client_id:
                return "the authorization code was issued to another client"
            if row["used_at"] is not None:
                # RFC 6749 §4.1.2: a code used twice revokes what it granted.
                await store.revoke_grant(conn, row["grant_id"], now, "authorization code reused", "oauth")
                return "the authorization code was already used"
            await store.mark_code_used(conn, ident, now)
            if row["grant_revoked_at"] is not None:
                return "the grant was revoked"
            if _epoch(row["expires_at"]) <= now:
                return "the authorization code expired"
            if form.get("redirect_uri", row["redirect_uri"]) != row["redirect_uri"]:
                return "redirect_uri differs from the authorization request's"
            if create_s256_code_challenge(verifier) != row["code_challenge"]:
                return "code_verifier does not match the code_challenge"
            return await self._issue(conn, row["grant_id"], row["scope"], now)

        result = await self.db.transaction(exchange)
        if isinstance(result, str):
            log.info("OAuth code exchange refused", extra={"client_id": client.client_id, "reason": result})
            raise OAuthError("invalid_grant", result)
        return result

    async def refresh(
        self, credentials: ClientCredentials, form: Mapping[str, str], resource: str
    ) -> IssuedTokens:
        client = await self.authenticate_client(credentials)
        token = form.get("refresh_token")
        ident = parse_secret(token, "rt")
        if ident is None or token is None:
            raise OAuthError("invalid_grant", "the refresh token is invalid")
        asked = form.get("resource")
        if asked is not None and asked.rstrip("/") != resource:
            raise OAuthError("invalid_target", "resource is not this server's MCP endpoint")
        narrowed = None
        if form.get("scope"):
            narrowed = parse_scope(form["scope"])
            if narrowed is None:
                raise OAuthError("invalid_scope", "scope names a scope this server does not offer")
        now = self.clock.now()

        async def rotate(conn: Connection) -> IssuedTokens | str:
            row = await store.lock_token(conn, ident)
            if row is None or row["kind"] != "refresh" or not matches(row["token_hash"], token):
                return "the refresh token is invalid"
            if row["client_id"] != client.client_id:
                return "the refresh token was issued to another client"
            if row["grant_revoked_at"] is not None or row["revoked_at"] is not None:
                return "the refresh token was revoked"
            if row["used_at"] is not None:
                # Rotation: a used refresh token coming back means it leaked; end the grant.
                await store.revoke_grant(conn, row["grant_id"], now, "refresh token reused", "oauth")
                log.warning(
                    "OAuth refresh token reused: grant revoked",
                    extra={"client_id": client.client_id, "grant_id": str(row["grant_id"])},
                )
                return "the refresh token was already used; the grant is revoked"
            if _epoch(row["expires_at"]) <= now:
                return "the refresh token expired"
            granted = row["scope"].split()
            if narrowed is not None and not set(narrowed) <= set(granted):
                return "scope exceeds what was granted"
            await store.mark_token_used(conn, ident, now)
            scope = " ".join(narrowed) if narrowed is not None else row["scope"]
            return await self._issue(conn, row["grant_id"], scope, now)

        result = await self.db.transaction(rotate)
        if isinstance(result, str):
            log.info("OAuth refresh refused", extra={"client_id": client.client_id, "reason": result})
            raise OAuthError("invalid_grant", result)
        return result

    async def _issue(self, conn: Connection, grant_id: uuid.UUID, scope: str, now: float) -> IssuedTokens:
        access_id, access = new_secret("at")
        refresh_id, refresh = new_secret("rt")
        await store.insert_token(
            conn, access_id, "access", hash_secret(access), grant_id, now + self.access_ttl_s
        )
        await store.insert_token(
            conn, refresh_id, "refresh", hash_secret(refresh), grant_id, now + self.refresh_ttl_s
        )
        return IssuedTokens(access, refresh, int(self.access_ttl_s), scope)

    # -- /revoke -------------------------------------------------------------------------

    async def revoke(self, credentials: ClientCredentials, token: object) -> None:
        """RFC 7009: revoke a token of this client (a refresh token takes its grant along);
        an unknown or foreign token is no error."""
        client = await self.authenticate_client(credentials)
        kind = "access" if parse_secret(token, "at") else "refresh" if parse_secret(token, "rt") else None
        if kind is None or not isinstance(token, str):
            return
        ident = parse_secret(token, "at" if kind == "access" else "rt")
        assert ident is not None
        now = self.clock.now()

        async def revoke(conn: Connection) -> None:
            row = await store.lock_token(conn, ident)
            if row is None or not matches(row["token_hash"], token) or row["client_id"] != client.client_id:
                return
            if kind == "refresh":
                await store.revoke_grant(conn, row["grant_id"], now, "refresh token revoked", "client")
            else:
                await store.revoke_token(conn, ident, row["grant_id"], now)

        await self.db.transaction(revoke)

    # -- the resource server's lookup ----------------------------------------------------

    async def lookup_access_token(self, token: str) -> Any:
        """The row of an access token (None if unknown); `deneva.mcp.auth` checks it."""
        ident = parse_secret(token, "at")
        if ident is None:
            return None
        return await self.db.run(lambda conn: store.lookup_token(conn, ident))


def _epoch(value: datetime) -> float:
    return value.timestamp()
