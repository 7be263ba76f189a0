"""An external identity provider (daemon/oauth/jwt.py): a small OIDC provider started in the
test on loopback (discovery document and JWKS over real HTTP, tokens signed with joserfc),
and `/mcp` accepting its JWTs for the tenant a claim names, through the real resource
server; wrong audience, issuer, expiry, algorithm (`none`, HS256 with the public key),
unknown keys, tenants and scopes refused; keys cached and rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from deneva.db import Database
from deneva.oauth.jwt import ExternalIssuer
from deneva.tenants import TenantError, tenant_by_name
from tests.http.oauth_fixtures import OAuthTestServer, oauth_test_server
from tests.http.test_oauth import call
from tests.http.tls_docs import TlsServer, json_answer, tls_server
from tests.mcp.daemon_fixture import TenantSpec, running_daemon


@attrs.define
class Provider:
    http: TlsServer
    key: RSAKey
    keys: list[Any]

    @property
    def issuer(self) -> str:
        return self.http.base + "/realms/deneva"

    def publish(self) -> None:
        self.http.routes["/realms/deneva/.well-known/openid-configuration"] = json_answer(
            {"issuer": self.issuer, "jwks_uri": self.http.url("/realms/deneva/certs")}
        )
        self.http.routes["/realms/deneva/certs"] = json_answer(KeySet(self.keys).as_dict(private=False))

    def token(self, audience: str, key: Any = None, alg: str = "RS256", **claims: Any) -> str:
        key = key or self.key
        body = {
            "iss": self.issuer,
            "aud": audience,
            "exp": int(time.time()) + 300,
            "iat": int(time.time()),
            "sub": "user-1",
            "deneva_tenant": "acme",
            "scope": "openid reports:read",
            **claims,
        }
        return jwt.encode({"alg": alg, "kid": key.kid}, {k: v for k, v in body.items() if v is not None}, key)


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Provider]:
    async with tls_server(tmp_path, tls=False) as http:
        key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
        running = Provider(http, key, [key])
        running.publish()
        yield running


@pytest.fixture
async def srv(db: Database, provider: Provider) -> AsyncIterator[tuple[OAuthTestServer, ExternalIssuer]]:
    async def tenant_id(name: str) -> str | None:
        try:
            return str((await db.run(lambda conn: tenant_by_name(conn, name))).id)
        except TenantError:
            return None

    issuer = ExternalIssuer(provider.issuer, tenant_id)
    async with oauth_test_server(db, external=issuer) as running:
        yield running, issuer


def b64(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(secret: bytes, payload: str) -> str:
    """A token signed with HMAC, the issuer's public key as the secret (joserfc itself refuses
    to make such a key, so it is signed by hand)."""
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'k1', 'typ': 'JWT'})}.{payload}"
    return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"


async def test_the_providers_tokens_read_the_tenant_their_claim_names(
    srv: tuple[OAuthTestServer, ExternalIssuer], provider: Provider
) -> None:
    server, issuer = srv
    async with httpx.AsyncClient(timeout=10) as http:
        prm = (await http.get(f"{server.base}/.well-known/oauth-protected-resource/mcp")).json()
        assert prm["authorization_servers"] == [provider.issuer] and prm["resource"] == server.url
        assert (await http.get(f"{server.base}/.well-known/oauth-authorization-server")).status_code == 404
        assert (await http.post(f"{server.base}/register", json={})).status_code in (404, 405)
        ok = await call(http, server.url, provider.token(server.url))
        assert ok.status_code == 200 and ok.json()["result"]["structuredContent"] == {
            "tenant": server.tenant_a
        }
        globex = await call(http, server.url, provider.token(server.url, deneva_tenant="globex"))
        assert globex.json()["result"]["structuredContent"] == {"tenant": server.tenant_b}
        # Keys and tenants are cached: no more fetches, and the API key path is untouched.
        assert issuer.fetches == 1 and provider.http.hits["/realms/deneva/certs"] == 1
        assert (await call(http, server.url, server.key_a)).status_code == 200
        # The scope claim decides the tools: reports:read only, so refresher is 403.
        denied = await call(http, server.url, provider.token(server.url), "refresher")
        assert (
            denied.status_code == 403 and 'error="insufficient_scope"' in denied.headers["www-authenticate"]
        )
        allowed = await call(
            http, server.url, provider.token(server.url, scope=None, scp=["reports:refresh"]), "refresher"
        )
        assert allowed.status_code == 200


async def test_bad_tokens_are_refused_with_invalid_token(
    srv: tuple[OAuthTestServer, ExternalIssuer], provider: Provider
) -> None:
    server, _ = srv
    public_pem = provider.key.as_pem(private=False)
    other_rsa = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)  # same kid, other key
    stranger = ECKey.generate_key("P-256", parameters={"kid": "k9"}, private=True)
    good = provider.token(server.url)
    header, payload, _ = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    bad = {
        "wrong audience": provider.token("https://other.example/mcp"),
        "wrong issuer": provider.token(server.url, iss="https://evil.example/realms/deneva"),
        "expired": provider.token(server.url, exp=int(time.time()) - 120),
        "not yet valid": provider.token(server.url, nbf=int(time.time()) + 3600),
        "no exp": provider.token(server.url, exp=None),
        "alg none": f"{b64({'alg': 'none', 'kid': 'k1'})}.{payload}.",
        "HS256 with the public key": hs256(public_pem, payload),
        "signed by another key": provider.token(server.url, key=other_rsa),
        "unknown kid": provider.token(server.url, key=stranger, alg="ES256"),
        "tampered claims": f"{header}.{b64({**claims, 'deneva_tenant': 'globex'})}.{good.split('.')[2]}",
        "unknown tenant": provider.token(server.url, deneva_tenant="ghost"),
        "no tenant claim": provider.token(server.url, deneva_tenant=None),
        "garbage": "a.b.c",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        for reason, token in bad.items():
            answer = await call(http, server.url, token)
            assert answer.status_code == 401, (reason, answer.status_code, answer.text)
            assert 'error="invalid_token"' in answer.headers["www-authenticate"], reason
        assert (await call(http, server.url, good)).status_code == 200


async def test_a_rotated_key_is_fetched_once_its_kid_appears(db: Database, provider: Provider) -> None:
    async def tenant_id(name: str) -> str | None:
        return str((await db.run(lambda conn: tenant_by_name(conn, name))).id)

    issuer = ExternalIssuer(provider.issuer, tenant_id, jwks_url=provider.http.url("/realms/deneva/certs"))
    async with oauth_test_server(db, external=issuer) as server, httpx.AsyncClient(timeout=10) as http:
        assert (await call(http, server.url, provider.token(server.url))).status_code == 200
        new = ECKey.generate_key("P-256", parameters={"kid": "k2"}, private=True)
        provider.keys.append(new)
        provider.publish()
        # The JWKS was fetched less than a minute ago, so the new kid is refused (no fetch storm)...
        assert (
            await call(http, server.url, provider.token(server.url, key=new, alg="ES256"))
        ).status_code == 401
        assert issuer.fetches == 1
        issuer._last_fetch -= 61  # ... until a minute has passed (the cache's own clock)
        assert (
            await call(http, server.url, provider.token(server.url, key=new, alg="ES256"))
        ).status_code == 200
        assert (
            issuer.fetches == 2
            and provider.http.hits.get("/realms/deneva/.well-known/openid-configuration") is None
        )


async def test_the_daemon_configured_with_an_issuer_serves_its_tokens(
    tmp_path: Path, database_url: str, provider: Provider
) -> None:
    spec = TenantSpec("acme", (("google", "4305550101"),))
    async with (
        running_daemon(tmp_path, database_url, [spec], oauth_issuer=provider.issuer) as daemon,
        httpx.AsyncClient(timeout=10) as http,
    ):
        prm = (await http.get(f"{daemon.base}/.well-known/oauth-protected-resource")).json()
        assert prm == {
            "resource": daemon.url,
            "authorization_servers": [provider.issuer],
            "scopes_supported": ["reports:read", "reports:refresh"],
            "bearer_methods_supported": ["header"],
            "resource_name": "deneva",
        }
        assert (await http.get(f"{daemon.base}/.well-known/oauth-authorization-server")).status_code == 404
        answer = await call(http, daemon.url, provider.token(daemon.url), "get_sync_status")
        assert answer.status_code == 200, answer.text
        accounts = answer.json()["result"]["structuredContent"]["accounts"]
        assert [a["accountId"] for a in accounts] == ["4305550101"]
        refused = await call(
            http, daemon.url, provider.token(daemon.url, aud="https://elsewhere/mcp"), "get_sync_status"
        )
        assert refused.status_code == 401
        # A tenant claim that is no tenant name at all (a NUL) is refused before any query.
        junk = await call(
            http, daemon.url, provider.token(daemon.url, deneva_tenant="acme\x00"), "get_sync_status"
        )
        assert junk.status_code == 401
