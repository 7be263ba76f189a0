"""MCP authorization over real HTTP (http/oauth.py, the resource side of http/mcp.py and
http/mcp_ws.py): metadata, registration, the authorize page and its decision, the token
and revocation endpoints, and access tokens on /mcp and /mcp/ws; every kind of bad input
gets the RFC's error, never a 500, nothing is granted, and no secret reaches a log."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from deneva.db import Database
from deneva.oauth import store
from deneva.oauth.cimd import ClientDocuments
from tests.http.oauth_fixtures import ADMIN_TOKEN, OAuthTestServer, oauth_test_server
from tests.mcp.oauth_flow import REDIRECT_URI, page_forms, pkce, redirect_of, secrets_in

MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture
async def srv(db: Database) -> AsyncIterator[OAuthTestServer]:
    async with oauth_test_server(db) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def register(http: httpx.AsyncClient, srv: OAuthTestServer, **extra: Any) -> dict[str, Any]:
    body = {
        "client_name": "Test <b>client</b>",
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
    }
    answer = await http.post(f"{srv.base}/register", json={**body, **extra})
    assert answer.status_code == 201, answer.text
    out: dict[str, Any] = answer.json()
    return out


def authorize_url(srv: OAuthTestServer, client_id: str, challenge: str, **extra: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "state": "state-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "reports:read reports:refresh",
        "resource": srv.url,
        **extra,
    }
    return f"{srv.base}/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


async def approve(
    http: httpx.AsyncClient, srv: OAuthTestServer, url: str, code: str | None = None
) -> httpx.Response:
    page = await http.get(url)
    assert page.status_code == 200, page.text
    form = {**page_forms(page.text)["consent"], "action": "approve"}
    form["connect_code"] = code or (await srv.server.create_connect_code("acme"))[0]
    return await http.post(f"{srv.base}/authorize", data=form)


async def tokens_for(
    http: httpx.AsyncClient, srv: OAuthTestServer, scope: str = "reports:read reports:refresh"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client, token response) of a public client through the whole flow."""
    client = await register(http, srv)
    verifier, challenge = pkce()
    answer = redirect_of(
        await approve(http, srv, authorize_url(srv, client["client_id"], challenge, scope=scope))
    )
    issued = await http.post(
        f"{srv.base}/token",
        data={
            "grant_type": "authorization_code",
            "code": answer.params["code"],
            "code_verifier": verifier,
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT_URI,
            "resource": srv.url,
        },
    )
    assert issued.status_code == 200, issued.text
    return client, issued.json()


async def call(http: httpx.AsyncClient, url: str, token: str, tool: str = "whoami") -> httpx.Response:
    return await http.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": {}, "_meta": META},
        },
        headers={
            "authorization": f"Bearer {token}",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": tool,
            "accept": "application/json",
        },
    )


async def grants(srv: OAuthTestServer) -> list[dict[str, Any]]:
    return await srv.db.run(lambda conn: store.list_grants(conn))


async def test_metadata_names_the_resource_and_the_built_in_authorization_server(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        prm = (await http.get(srv.base + path)).json()
        assert prm["resource"] == srv.url
        assert prm["authorization_servers"] == [srv.base + "/"]
        assert prm["scopes_supported"] == ["reports:read", "reports:refresh"]
    meta = (await http.get(f"{srv.base}/.well-known/oauth-authorization-server")).json()
    assert meta["issuer"] == srv.base + "/"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["registration_endpoint"] == f"{srv.base}/register"
    assert meta["revocation_endpoint"] == f"{srv.base}/revoke"
    assert meta["client_id_metadata_document_supported"] is False  # no document resolver here
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token"}


async def test_401_challenges_name_the_resource_metadata_on_http_and_websocket(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    missing = await http.post(srv.url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert missing.status_code == 401
    challenge = missing.headers["www-authenticate"]
    assert f'resource_metadata="{srv.base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert 'scope="reports:read reports:refresh"' in challenge and "error=" not in challenge
    bad = await call(http, srv.url, "dnv_at_0123456789abcdef_" + "x" * 43)
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
    with pytest.raises(Exception) as refused:
        async with open_websocket_url(srv.ws_url, subprotocols=["mcp"]):
            pass
    assert "401" in str(refused.value)
    # API keys keep working beside OAuth.
    ok = await call(http, srv.url, srv.key_a)
    assert ok.status_code == 200 and ok.json()["result"]["structuredContent"] == {"tenant": srv.tenant_a}


async def test_the_whole_flow_gives_a_token_that_reads_its_tenant_only_and_refreshes(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client, issued = await tokens_for(http, srv)
    assert issued["token_type"] == "Bearer" and issued["scope"] == "reports:read reports:refresh"
    ok = await call(http, srv.url, issued["access_token"])
    assert ok.status_code == 200 and ok.json()["result"]["structuredContent"] == {"tenant": srv.tenant_a}
    refreshed = await http.post(
        f"{srv.base}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert refreshed.status_code == 200 and refreshed.headers["cache-control"] == "no-store"
    new = refreshed.json()
    assert new["refresh_token"] != issued["refresh_token"]
    ok = await call(http, srv.url, new["access_token"], "refresher")
    assert ok.status_code == 200 and ok.json()["result"]["structuredContent"] == {"refreshed": srv.tenant_a}
    [grant] = await grants(srv)
    assert grant["tenant"] == "acme" and grant["clientName"] == "Test <b>client</b>"


async def test_a_token_without_a_tools_scope_gets_403_insufficient_scope(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    _, issued = await tokens_for(http, srv, scope="reports:read")
    assert issued["scope"] == "reports:read"
    assert (await call(http, srv.url, issued["access_token"])).status_code == 200
    denied = await call(http, srv.url, issued["access_token"], "refresher")
    assert denied.status_code == 403
    challenge = denied.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="reports:refresh"' in challenge
    async with open_websocket_url(
        srv.ws_url,
        subprotocols=["mcp"],
        extra_headers=[(b"authorization", f"Bearer {issued['access_token']}".encode())],
    ) as ws:
        request = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "refresher", "arguments": {}, "_meta": META},
        }
        await ws.send_message(json.dumps(request))
        answer = json.loads(await ws.get_message())
        assert answer["id"] == 7 and answer["error"]["code"] == -32003
        request["params"]["name"] = "whoami"  # type: ignore[index]
        await ws.send_message(json.dumps(request))
        answer = json.loads(await ws.get_message())
        assert answer["result"]["structuredContent"] == {"tenant": srv.tenant_a}


async def test_a_token_for_another_resource_is_refused(srv: OAuthTestServer, http: httpx.AsyncClient) -> None:
    _, issued = await tokens_for(http, srv)
    # The same daemon reached under another name is another resource (RFC 8707).
    other = srv.url.replace("127.0.0.1", "localhost")
    refused = await call(http, other, issued["access_token"])
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert (await call(http, srv.url, issued["access_token"])).status_code == 200
    # And a token is only issued for this resource.
    client = await register(http, srv)
    _, challenge = pkce()
    wrong = redirect_of(
        await http.get(
            authorize_url(srv, client["client_id"], challenge, resource="https://elsewhere.example/mcp")
        )
    )
    assert wrong.params["error"] == "invalid_target" and wrong.params["iss"] == srv.base + "/"


async def test_expired_and_revoked_access_tokens_stop_at_once(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client, issued = await tokens_for(http, srv)
    token = issued["access_token"]
    assert (await call(http, srv.url, token)).status_code == 200
    lookups = srv.keys.lookups
    assert (await call(http, srv.url, token)).status_code == 200 and srv.keys.lookups == lookups  # cached
    srv.clock.t += issued["expires_in"] + 1
    assert (await call(http, srv.url, token)).status_code == 401  # expired, refused from the cache
    srv.clock.t -= issued["expires_in"] + 1
    assert (await call(http, srv.url, token)).status_code == 200
    applied = srv.keys.next_change()
    revoked = await http.post(f"{srv.base}/revoke", data={"token": token, "client_id": client["client_id"]})
    assert revoked.status_code == 200
    with trio.fail_after(10):
        await applied.wait()
    assert (await call(http, srv.url, token)).status_code == 401
    # Revoking the refresh token ends the grant: the refresh token cannot be used.
    await http.post(
        f"{srv.base}/revoke", data={"token": issued["refresh_token"], "client_id": client["client_id"]}
    )
    refused = await http.post(
        f"{srv.base}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # Unknown tokens are no error (RFC 7009 §2.2).
    unknown = await http.post(
        f"{srv.base}/revoke", data={"token": "nonsense", "client_id": client["client_id"]}
    )
    assert unknown.status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://example.com/cb"]}, "invalid_redirect_uri"),  # http off loopback
        ({"redirect_uris": ["https://example.com/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://example.com/cb"] * 11}, "invalid_redirect_uri"),
        (
            {"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
        ),
        ({"redirect_uris": [REDIRECT_URI], "grant_types": ["password"]}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT_URI], "scope": "admin"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT_URI], "client_uri": "not a url"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT_URI], "client_name": "x" * 201}, "invalid_client_metadata"),
        ("not an object", "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT_URI], "software_statement": "x" * 17_000}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT_URI], "software_id": "a\x00b"}, "invalid_client_metadata"),
        ({"redirect_uris": [REDIRECT_URI], "contacts": [{"\x00": 1}]}, "invalid_client_metadata"),
    ],
)
async def test_registration_refuses_bad_metadata_and_stores_nothing(
    srv: OAuthTestServer, http: httpx.AsyncClient, body: Any, error: str
) -> None:
    answer = await http.post(f"{srv.base}/register", json=body)
    assert answer.status_code == 400 and answer.json()["error"] == error, answer.text
    assert await srv.db.run(store.list_clients) == []


async def test_registration_refuses_an_oversized_body(srv: OAuthTestServer, http: httpx.AsyncClient) -> None:
    huge = {"redirect_uris": [REDIRECT_URI], "client_name": "x", "padding": "y" * (1024 * 1024 + 1)}
    answer = await http.post(
        f"{srv.base}/register", content=json.dumps(huge), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert await srv.db.run(store.list_clients) == []


async def test_authorize_errors_about_the_client_are_pages_never_redirects(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client = await register(http, srv)
    _, challenge = pkce()
    for url in (
        authorize_url(srv, "dnv_client_0000000000000000", challenge),  # unknown client
        authorize_url(srv, client["client_id"], challenge, redirect_uri="https://evil.example/cb"),
        authorize_url(srv, client["client_id"], challenge, redirect_uri=REDIRECT_URI + "/more"),  # not exact
        authorize_url(srv, client["client_id"], challenge) + "&client_id=again",  # repeated parameter
    ):
        page = await http.get(url)
        assert page.status_code in (400, 401) or page.status_code == 400, page.status_code
        assert "location" not in page.headers and "evil.example" not in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert "Nothing was granted" in page.text
    assert await grants(srv) == []


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),  # PKCE missing
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),  # malformed
        ({"code_challenge": "!" * 43}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "reports:read admin"}, "invalid_scope"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
    ],
)
async def test_authorize_errors_go_back_to_the_client_with_state_and_iss(
    srv: OAuthTestServer, http: httpx.AsyncClient, extra: dict[str, str | None], error: str
) -> None:
    client = await register(http, srv)
    _, challenge = pkce()
    answer = redirect_of(await http.get(authorize_url(srv, client["client_id"], challenge, **extra)))
    assert answer.location.startswith(REDIRECT_URI + "?")
    assert answer.params["error"] == error
    assert answer.params["state"] == "state-123" and answer.params["iss"] == srv.base + "/"
    assert await grants(srv) == []


async def test_a_bad_state_is_refused_without_being_echoed(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client = await register(http, srv)
    _, challenge = pkce()
    for state in ("x" * 501, "line\nbreak"):
        answer = redirect_of(await http.get(authorize_url(srv, client["client_id"], challenge, state=state)))
        assert answer.params["error"] == "invalid_request" and "state" not in answer.params


async def test_the_consent_form_needs_its_csrf_token_and_a_valid_connect_code(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client = await register(http, srv)
    _, challenge = pkce()
    url = authorize_url(srv, client["client_id"], challenge)
    page = await http.get(url)
    assert "Test &lt;b&gt;client&lt;/b&gt;" in page.text and "<b>client</b>" not in page.text  # escaped
    assert "127.0.0.1:48123" in page.text and "reports:refresh" in page.text
    form = {**page_forms(page.text)["consent"], "action": "approve"}
    code, _ = await srv.server.create_connect_code("acme")
    async with httpx.AsyncClient(timeout=10) as stranger:  # no CSRF cookie: a cross-site post
        forged = await stranger.post(f"{srv.base}/authorize", data={**form, "connect_code": code})
    assert forged.status_code == 403 and "location" not in forged.headers
    tampered = await http.post(f"{srv.base}/authorize", data={**form, "csrf": "x" * 43, "connect_code": code})
    assert tampered.status_code == 403
    wrong = await http.post(f"{srv.base}/authorize", data={**form, "connect_code": "AAAA-BBBB-CCCC"})
    assert wrong.status_code == 400 and "not valid" in wrong.text and "location" not in wrong.headers
    assert await grants(srv) == []
    ok = redirect_of(await http.post(f"{srv.base}/authorize", data={**form, "connect_code": code.lower()}))
    assert ok.params["code"].startswith("dnv_ac_") and ok.params["iss"] == srv.base + "/"
    # The connect code was used up.
    again = await http.get(url)
    form = {**page_forms(again.text)["consent"], "action": "approve", "connect_code": code}
    reused = await http.post(f"{srv.base}/authorize", data=form)
    assert reused.status_code == 400 and len(await grants(srv)) == 1


async def test_an_expired_connect_code_grants_nothing(srv: OAuthTestServer, http: httpx.AsyncClient) -> None:
    client = await register(http, srv)
    _, challenge = pkce()
    code, expires = await srv.server.create_connect_code("acme")
    assert expires == srv.clock.t + 15 * 60
    srv.clock.t += 15 * 60 + 1
    refused = await approve(http, srv, authorize_url(srv, client["client_id"], challenge), code)
    assert refused.status_code == 400 and await grants(srv) == []


async def test_deny_sends_access_denied_back(srv: OAuthTestServer, http: httpx.AsyncClient) -> None:
    client = await register(http, srv)
    _, challenge = pkce()
    page = await http.get(authorize_url(srv, client["client_id"], challenge))
    form = {**page_forms(page.text)["consent"], "action": "deny"}
    answer = redirect_of(await http.post(f"{srv.base}/authorize", data=form))
    assert answer.params["error"] == "access_denied" and answer.params["state"] == "state-123"
    assert await grants(srv) == []


async def test_the_operator_signs_in_with_the_admin_token_and_chooses_the_tenant(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client = await register(http, srv)
    verifier, challenge = pkce()
    page = await http.get(authorize_url(srv, client["client_id"], challenge))
    fields = page_forms(page.text)["operator"]
    wrong = await http.post(
        f"{srv.base}/authorize", data={**fields, "action": "sign_in", "admin_token": "nope"}
    )
    assert wrong.status_code == 403 and "wrong" in wrong.text
    # Choosing a tenant without having signed in is refused.
    unsigned = await http.post(
        f"{srv.base}/authorize", data={**fields, "action": "approve_operator", "tenant": "globex"}
    )
    assert unsigned.status_code == 403 and await grants(srv) == []
    signed = await http.post(
        f"{srv.base}/authorize", data={**fields, "action": "sign_in", "admin_token": ADMIN_TOKEN}
    )
    assert signed.status_code == 200 and ADMIN_TOKEN not in signed.text
    assert '<option value="globex">' in signed.text and '<option value="acme">' in signed.text
    chosen = {**page_forms(signed.text)["consent"], "action": "approve_operator"}
    ghost = await http.post(f"{srv.base}/authorize", data={**chosen, "tenant": "ghost"})
    assert ghost.status_code == 400 and await grants(srv) == []
    answer = redirect_of(await http.post(f"{srv.base}/authorize", data={**chosen, "tenant": "globex"}))
    issued = await http.post(
        f"{srv.base}/token",
        data={
            "grant_type": "authorization_code",
            "code": answer.params["code"],
            "code_verifier": verifier,
            "client_id": client["client_id"],
        },
    )
    token = issued.json()["access_token"]
    assert (await call(http, srv.url, token)).json()["result"]["structuredContent"] == {
        "tenant": srv.tenant_b
    }
    [grant] = await grants(srv)
    assert grant["tenant"] == "globex" and grant["grantedBy"] == "operator"


async def test_token_endpoint_errors_grant_nothing(srv: OAuthTestServer, http: httpx.AsyncClient) -> None:
    client = await register(http, srv)
    verifier, challenge = pkce()
    code = redirect_of(await approve(http, srv, authorize_url(srv, client["client_id"], challenge))).params[
        "code"
    ]
    base = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT_URI,
    }

    async def token(**form: str | None) -> httpx.Response:
        return await http.post(f"{srv.base}/token", data={k: v for k, v in form.items() if v is not None})

    missing = await token(**{**base, "code_verifier": None})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    malformed = await token(**{**base, "code_verifier": "short"})
    assert malformed.status_code == 400 and malformed.json()["error"] == "invalid_request"
    assert (await token(grant_type="password", client_id=client["client_id"])).json()[
        "error"
    ] == "unsupported_grant_type"
    assert (await token(client_id=client["client_id"])).json()["error"] == "invalid_request"
    other = await register(http, srv)
    foreign = await token(**{**base, "client_id": other["client_id"], "code_verifier": verifier})
    assert foreign.status_code == 400 and foreign.json()["error"] == "invalid_grant"
    unknown = await token(**{**base, "client_id": "dnv_client_ffffffffffffffff", "code_verifier": verifier})
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    wrong_verifier, _ = pkce()
    bad = await token(**{**base, "code_verifier": wrong_verifier})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    # The code was used by that failed attempt: it is gone, and its grant with it.
    again = await token(**{**base, "code_verifier": verifier})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    [grant] = await grants(srv)
    assert grant["revokedReason"] == "authorization code reused"


async def test_a_reused_code_revokes_the_tokens_it_gave(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client = await register(http, srv)
    verifier, challenge = pkce()
    code = redirect_of(await approve(http, srv, authorize_url(srv, client["client_id"], challenge))).params[
        "code"
    ]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client["client_id"],
        "code_verifier": verifier,
    }
    first = await http.post(f"{srv.base}/token", data=form)
    token = first.json()["access_token"]
    assert (await call(http, srv.url, token)).status_code == 200
    applied = srv.keys.next_change()
    second = await http.post(f"{srv.base}/token", data=form)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    with trio.fail_after(10):
        await applied.wait()
    assert (await call(http, srv.url, token)).status_code == 401


async def test_an_expired_code_or_another_redirect_uri_is_invalid_grant(
    srv: OAuthTestServer, http: httpx.AsyncClient
) -> None:
    client = await register(http, srv, redirect_uris=[REDIRECT_URI, "http://127.0.0.1:48123/other"])
    for change in ("expire", "redirect"):
        verifier, challenge = pkce()
        code = redirect_of(
            await approve(http, srv, authorize_url(srv, client["client_id"], challenge))
        ).params["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client["client_id"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
        }
        if change == "expire":
            srv.clock.t += 301
        else:
            form["redirect_uri"] = "http://127.0.0.1:48123/other"
        answer = await http.post(f"{srv.base}/token", data=form)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", change


async def test_confidential_clients_must_authenticate(srv: OAuthTestServer, http: httpx.AsyncClient) -> None:
    answer = await http.post(f"{srv.base}/register", json={"redirect_uris": [REDIRECT_URI]})
    client = answer.json()
    assert client["token_endpoint_auth_method"] == "client_secret_basic" and client[
        "client_secret"
    ].startswith("dnv_cs_")
    form = {"grant_type": "refresh_token", "refresh_token": "dnv_rt_0000000000000000_" + "a" * 43}
    no_secret = await http.post(f"{srv.base}/token", data={**form, "client_id": client["client_id"]})
    assert no_secret.status_code == 401 and no_secret.json()["error"] == "invalid_client"
    assert no_secret.headers["www-authenticate"].startswith("Basic")
    wrong = await http.post(
        f"{srv.base}/token", data=form, auth=(client["client_id"], "dnv_cs_0000000000000000_" + "b" * 43)
    )
    assert wrong.status_code == 401
    right = await http.post(
        f"{srv.base}/token", data=form, auth=(client["client_id"], client["client_secret"])
    )
    assert (
        right.status_code == 400 and right.json()["error"] == "invalid_grant"
    )  # authenticated; unknown token
    garbled = await http.post(f"{srv.base}/token", data=form, headers={"authorization": "Basic !!!"})
    assert garbled.status_code == 401


async def test_no_secret_reaches_the_logs(
    srv: OAuthTestServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, issued = await tokens_for(http, srv)
    await http.post(
        f"{srv.base}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    await http.post(  # a replay: refused, logged
        f"{srv.base}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": issued["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    # The daemon's own logs (the test's HTTP client logs the redirects it receives).
    logged = "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("deneva")
    )
    assert "refresh token reused" in logged
    assert secrets_in(logged) == []
    assert issued["access_token"] not in logged and issued["refresh_token"] not in logged


async def test_metadata_document_client_ids_at_private_addresses_get_an_error_page(db: Database) -> None:
    async with oauth_test_server(db, ClientDocuments()) as srv, httpx.AsyncClient(timeout=10) as http:
        meta = (await http.get(f"{srv.base}/.well-known/oauth-authorization-server")).json()
        assert meta["client_id_metadata_document_supported"] is True
        _, challenge = pkce()
        port = srv.base.rsplit(":", 1)[1]
        for client_id in (
            f"https://127.0.0.1:{port}/.well-known/oauth-authorization-server",  # the daemon itself
            "https://169.254.169.254/latest/meta-data/client.json",
            "https://10.0.0.7/client.json",
        ):
            page = await http.get(authorize_url(srv, client_id, challenge))
            assert page.status_code == 400 and "location" not in page.headers
            assert "private, loopback or reserved" in page.text
            token = await http.post(
                f"{srv.base}/token",
                data={
                    "grant_type": "authorization_code",
                    "code": "x",
                    "client_id": client_id,
                    "code_verifier": "v" * 43,
                },
            )
            assert token.status_code == 401 and token.json()["error"] == "invalid_client"
        assert await grants(srv) == [] and await srv.db.run(store.list_clients) == []
