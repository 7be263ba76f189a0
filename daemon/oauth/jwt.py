"""An external identity provider's JWT access tokens (Okta, Entra ID, Keycloak, Auth0...).

With `oauth_issuer` configured, `/mcp` accepts the issuer's signed JWTs (joserfc does the
JOSE work) instead of the built-in authorization server's tokens:
- the header's `alg` must be in the allow-list (asymmetric algorithms only: `none` and
  HS256, a public key used as a shared secret, never pass), and its `kid` a key of the
  issuer's JWKS;
- the JWKS comes from `oauth_jwks_url` or the issuer's discovery document (OpenID
  `/.well-known/openid-configuration`, else RFC 8414), fetched with a size and time
  limit, no redirects, cached 10 minutes; an unknown `kid` fetches it again at most
  once a minute (key rotation);
- `iss` must be the issuer, `aud` this server's MCP URL (RFC 8707), `exp` in the future
  (`nbf`, `iat` checked when present);
- the claim `oauth_tenant_claim` (default `deneva_tenant`) names the tenant; the scopes
  are the `scope` claim (space-separated) or `scp` (a list).
The tenant names' ids are cached, so a verified token costs no database round trip.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import trio
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from deneva.oauth.model import SCOPES
from deneva.oauth.resource import Caller

log = logging.getLogger("deneva.oauth.jwt")

JWKS_TTL_S = 600.0
REFETCH_EVERY_S = 60.0
TENANT_TTL_S = 300.0
MAX_DOCUMENT_BYTES = 64 * 1024
FETCH_TIMEOUT_S = 5.0

# tenant_id(name) -> the tenant's id, or None when there is no such tenant.
TenantLookup = Callable[[str], Awaitable[str | None]]


class IssuerUnavailable(Exception):
    """The issuer's discovery document or JWKS could not be read."""


def _header(token: str) -> dict[str, Any] | None:
    try:
        raw = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None


class ExternalIssuer:
    def __init__(
        self,
        issuer: str,
        tenant_id: TenantLookup,
        *,
        jwks_url: str | None = None,
        tenant_claim: str = "deneva_tenant",
        algorithms: tuple[str, ...] = ("RS256", "ES256"),
        now: Callable[[], float] | None = None,
    ) -> None:
        self.issuer = issuer
        self.tenant_id = tenant_id
        self.jwks_url = jwks_url
        self.tenant_claim = tenant_claim
        self.algorithms = algorithms
        self._now = now
        self._keys: KeySet | None = None
        self._keys_until = 0.0  # trio time
        self._last_fetch = -REFETCH_EVERY_S
        self._tenants: dict[str, tuple[str | None, float]] = {}
        self._lock = trio.Lock()
        self.fetches = 0

    def _epoch(self) -> int:
        assert self._now is not None
        return int(self._now())

    async def caller(self, token: str, resource: str) -> Caller | None:
        header = _header(token)
        if header is None or header.get("alg") not in self.algorithms:
            alg = str(header.get("alg"))[:20] if header is not None else None
            log.info("JWT refused: algorithm not accepted", extra={"alg": alg})
            return None
        try:
            keys = await self._key_set(str(header.get("kid", "")))
        except IssuerUnavailable as exc:
            log.warning("JWT refused: the issuer's keys are unavailable", extra={"reason": str(exc)})
            return None
        try:
            decoded = jwt.decode(token, keys, algorithms=list(self.algorithms))
            registry = jwt.JWTClaimsRegistry(
                now=None if self._now is None else self._epoch,
                leeway=30,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": resource},
                exp={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.info("JWT refused", extra={"reason": type(exc).__name__})
            return None
        claims = decoded.claims
        name = claims.get(self.tenant_claim)
        if not isinstance(name, str) or not name:
            log.info("JWT refused: no tenant claim", extra={"claim": self.tenant_claim})
            return None
        tenant = await self._tenant(name)
        if tenant is None:
            log.info("JWT refused: unknown tenant", extra={"claim": self.tenant_claim})
            return None
        scope = claims.get("scope")
        granted = scope.split() if isinstance(scope, str) else claims.get("scp", [])
        scopes = frozenset(s for s in granted if isinstance(s, str) and s in SCOPES)
        return Caller(tenant, scopes)

    async def _tenant(self, name: str) -> str | None:
        now = trio.current_time()
        known = self._tenants.get(name)
        if known is not None and now < known[1]:
            return known[0]
        tenant = await self.tenant_id(name)
        if len(self._tenants) > 10_000:
            self._tenants.clear()
        self._tenants[name] = (tenant, now + TENANT_TTL_S)
        return tenant

    async def _key_set(self, kid: str) -> KeySet:
        """The issuer's keys: cached; fetched again when stale, or for an unknown `kid`,
        but never more than once a minute (nor after a failure)."""
        async with self._lock:
            now = trio.current_time()
            keys = self._keys
            stale = keys is None or now >= self._keys_until
            unknown = keys is not None and all(k.kid != kid for k in keys.keys)
            if (stale or unknown) and now - self._last_fetch >= REFETCH_EVERY_S:
                self._last_fetch = now
                self._keys = keys = await self._fetch_keys()
                self._keys_until = trio.current_time() + JWKS_TTL_S
            if keys is None:
                raise IssuerUnavailable("the last fetch of the issuer's keys failed; retried within a minute")
            return keys

    async def _fetch_keys(self) -> KeySet:
        self.fetches += 1
        async with httpx.AsyncClient(follow_redirects=False, timeout=FETCH_TIMEOUT_S) as http:
            url = self.jwks_url or await self._discover(http)
            document = await _get_json(http, url)
        try:
            return KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise IssuerUnavailable(f"the JWKS at {url} is not a key set ({type(exc).__name__})") from None

    async def _discover(self, http: httpx.AsyncClient) -> str:
        root = self.issuer.rstrip("/")
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            try:
                metadata = await _get_json(http, root + path)
            except IssuerUnavailable:
                continue
            if metadata.get("issuer") == self.issuer and isinstance(metadata.get("jwks_uri"), str):
                return str(metadata["jwks_uri"])
        raise IssuerUnavailable(f"no discovery document of {self.issuer} names its jwks_uri")


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    try:
        with trio.fail_after(FETCH_TIMEOUT_S):
            async with http.stream("GET", url, headers={"accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise IssuerUnavailable(f"{url} answered HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IssuerUnavailable(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
    except (httpx.HTTPError, trio.TooSlowError) as exc:
        raise IssuerUnavailable(f"{url} could not be read ({type(exc).__name__})") from None
    try:
        value = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        raise IssuerUnavailable(f"{url} is not JSON") from None
    if not isinstance(value, dict):
        raise IssuerUnavailable(f"{url} is not a JSON object")
    return value
