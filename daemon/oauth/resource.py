"""The MCP endpoints as an OAuth 2.1 resource server: who is calling, and with what rights.

A bearer credential is one of:
- an API key (`dnv_<prefix>_<secret>`): its tenant, every tool;
- an access token of the built-in authorization server (`dnv_at_...`): looked up through
  the daemon's cache (`deneva.mcp.auth.KeyCache`), refused unless it was issued for this
  very resource (RFC 8707: the MCP URL it is presented at);
- a JWT of the configured external identity provider (`deneva.oauth.jwt`): its `aud`
  must name this resource, and a configured claim names the tenant.

The resource URL is `public_url` + `/mcp` when configured (behind a reverse proxy), else
the scheme and Host of the request (which `HostPolicy` has already checked).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs

from deneva import tenants
from deneva.oauth.model import AccessGrant, parse_secret

METADATA_PATH = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"


@attrs.frozen
class Caller:
    tenant_id: str
    scopes: frozenset[str] | None = None  # None: an API key, which may call every tool

    def may(self, scope: str | None) -> bool:
        return scope is None or self.scopes is None or scope in self.scopes


class ExternalTokens(Protocol):
    issuer: str

    async def caller(self, token: str, resource: str) -> Caller | None: ...


class ProtectedResource:
    def __init__(
        self,
        authenticate_key: Callable[[str], Awaitable[str | None]],
        access_token: Callable[[str], Awaitable[AccessGrant | None]] | None = None,
        *,
        external: ExternalTokens | None = None,
        public_url: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        self.authenticate_key = authenticate_key
        self.access_token = access_token
        self.external = external
        self.public_url = None if public_url is None else public_url.rstrip("/")
        self.scopes = scopes

    @property
    def oauth(self) -> bool:
        return self.access_token is not None or self.external is not None

    def base_url(self, scheme: str, host: str | None) -> str:
        if self.public_url is not None:
            return self.public_url
        return f"{'https' if scheme in ('https', 'wss') else 'http'}://{host or 'localhost'}"

    @staticmethod
    def resource(base: str) -> str:
        return base + MCP_PATH

    def issuer(self, base: str) -> str:
        """The authorization server's issuer: the external one, or this daemon (RFC 8414 issuers
        are compared as strings; the root's is written with its slash, as clients render it)."""
        return self.external.issuer if self.external is not None else base + "/"

    def challenge(self, base: str, error: str | None = None, scope: str | None = None) -> str:
        parts = ['Bearer realm="deneva"']
        if self.oauth:
            parts.append(f'resource_metadata="{base}{METADATA_PATH}{MCP_PATH}"')
            parts.append(f'scope="{scope or " ".join(self.scopes)}"')
        if error is not None:
            parts.append(f'error="{error}"')
        return ", ".join(parts)

    async def identify(self, token: str, resource: str) -> Caller | None:
        if tenants.parse_key(token) is not None:
            tenant = await self.authenticate_key(token)
            return None if tenant is None else Caller(tenant)
        if self.access_token is not None and parse_secret(token, "at") is not None:
            grant = await self.access_token(token)
            if grant is None or grant.resource != resource:
                return None
            return Caller(grant.tenant_id, grant.scopes)
        if self.external is not None and token.count(".") == 2:
            return await self.external.caller(token, resource)
        return None
