"""The official MCP Python SDK's OAuth client (`mcp.client.auth`) against a real daemon:
discovery from the 401 challenge (RFC 9728), authorization server metadata (RFC 8414),
Dynamic Client Registration (RFC 7591), PKCE S256, the consent page filled in over HTTP
with a tenant's connect code, `iss` (RFC 9207), the token, tool calls, a refresh with
rotation; in both protocol generations. Then a refresh token replayed after rotation
revokes its grant, and the access token of that grant stops working at once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
import trio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from deneva.clock import SystemClock
from deneva.oauth import store
from deneva.oauth.server import AuthorizationServer
from tests.http.tls_docs import json_answer, tls_server
from tests.mcp.daemon_fixture import TOOL_NAMES, RunningDaemon, TenantSpec, running_daemon
from tests.mcp.oauth_flow import REDIRECT_URI, MemoryStorage, ScriptedConsent, sdk_provider
from tests.mcp.test_e2e_sdk import structured

ACCOUNTS = (("google", "4205550101"), ("meta", "4205550102"))
LEGACY = "2025-11-25"
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture
async def daemon(tmp_path: Path, database_url: str) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(tmp_path, database_url, [TenantSpec("acme", ACCOUNTS)]) as running:
        yield running


async def connect_code(daemon: RunningDaemon, tenant: str = "acme") -> str:
    """What `deneva oauth code --tenant NAME` prints (the same function)."""
    code, _ = await AuthorizationServer(daemon.db, SystemClock()).create_connect_code(tenant)
    return code


@asynccontextmanager
async def oauth_client(daemon: RunningDaemon, provider: httpx2.Auth, mode: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(daemon.url, http_client=http), mode=mode) as client,
    ):
        yield client


async def modern_call(
    http: httpx.AsyncClient, url: str, token: str, tool: str, args: dict[str, str]
) -> httpx.Response:
    return await http.post(
        url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": tool, "arguments": args, "_meta": META},
        },
        headers={
            "authorization": f"Bearer {token}",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": tool,
            "accept": "application/json, text/event-stream",
        },
    )


@pytest.mark.parametrize(("mode", "version"), [("legacy", LEGACY), (MODERN, MODERN)])
async def test_the_sdk_client_runs_the_whole_oauth_flow_by_registration(
    daemon: RunningDaemon, mode: str, version: str
) -> None:
    storage = MemoryStorage()
    script = ScriptedConsent([await connect_code(daemon)])
    provider = sdk_provider(daemon.url, script, storage)
    async with oauth_client(daemon, provider, mode) as client:
        assert client.protocol_version == version
        listed = await client.list_tools()
        assert tuple(t.name for t in listed.tools) == TOOL_NAMES
        report = structured(
            await client.call_tool("get_account_health", {"platform": "google", "dateRange": "last_7_days"})
        )
        assert report["cache"] == "hit" and report["data"]["report"] == "account_health"
        queued = structured(
            await client.call_tool(
                "refresh_report",
                {"platform": "meta", "reportType": "account_health", "dateRange": "last_7_days"},
            )
        )
        assert queued["status"] == "queued"
        assert script.authorizations == 1
        assert storage.client_info is not None and storage.client_info.client_id.startswith("dnv_client_")
        first = storage.tokens
        assert first is not None and first.access_token.startswith("dnv_at_")
        assert first.refresh_token is not None and first.refresh_token.startswith("dnv_rt_")
        assert first.scope == "reports:read reports:refresh"

        # The access token has expired (as far as the client knows): it refreshes, rotating.
        provider.context.token_expiry_time = time.time() - 1
        status = structured(await client.call_tool("get_sync_status", {}))
        assert {a["platform"] for a in status["accounts"]} == {"google", "meta"}
        second = storage.tokens
        assert second is not None and len(storage.history) == 2 and script.authorizations == 1
        assert second.access_token != first.access_token and second.refresh_token != first.refresh_token

    grants = await daemon.db.run(lambda conn: store.list_grants(conn, "acme"))
    assert [(g["scope"], g["grantedBy"], g["revokedAt"]) for g in grants] == [
        ("reports:read reports:refresh", "connect-code", None)
    ]
    assert grants[0]["resource"] == daemon.url

    # The first refresh token, replayed after its rotation: the grant is revoked, and the
    # newest access token of that grant is refused at once (the cache heard the NOTIFY).
    keys = daemon.daemon.keys
    assert keys is not None
    async with httpx.AsyncClient(timeout=10) as http:
        ok = await modern_call(http, daemon.url, second.access_token, "get_sync_status", {})
        assert ok.status_code == 200 and ok.json()["result"]["isError"] is False
        lookups = keys.lookups
        again = await modern_call(http, daemon.url, second.access_token, "get_sync_status", {})
        assert again.status_code == 200 and keys.lookups == lookups  # a cache hit: no database round trip
        info = storage.client_info
        assert info.client_secret is not None and info.token_endpoint_auth_method == "client_secret_basic"
        basic = (info.client_id, info.client_secret)
        applied = keys.next_change()
        replay = await http.post(
            f"{daemon.base}/token",
            data={"grant_type": "refresh_token", "refresh_token": first.refresh_token},
            auth=basic,
        )
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert first.refresh_token not in replay.text
        with trio.fail_after(10):
            await applied.wait()
        refused = await modern_call(http, daemon.url, second.access_token, "get_sync_status", {})
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        newest = await http.post(
            f"{daemon.base}/token",
            data={"grant_type": "refresh_token", "refresh_token": second.refresh_token},
            auth=basic,
        )
        assert newest.status_code == 400 and newest.json()["error"] == "invalid_grant"
    [grant] = await daemon.db.run(lambda conn: store.list_grants(conn, "acme"))
    assert grant["revokedAt"] is not None and grant["revokedReason"] == "refresh token reused"


@pytest.mark.parametrize(("mode", "version"), [("legacy", LEGACY), (MODERN, MODERN)])
async def test_the_sdk_client_runs_the_flow_with_a_client_id_metadata_document(
    tmp_path: Path, database_url: str, mode: str, version: str
) -> None:
    async with tls_server(tmp_path) as docs:
        url = docs.url("/oauth/client.json")
        docs.routes["/oauth/client.json"] = json_answer(
            {
                "client_id": url,
                "client_name": "Metadata document client",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }
        )
        async with running_daemon(
            tmp_path,
            database_url,
            [TenantSpec("acme", ACCOUNTS)],
            oauth_cimd_allow_loopback=True,  # the document server is on loopback in this test
            oauth_cimd_ca_file=docs.ca_file,
        ) as daemon:
            storage = MemoryStorage()
            script = ScriptedConsent([await connect_code(daemon)])
            provider = sdk_provider(daemon.url, script, storage, client_metadata_url=url)
            async with oauth_client(daemon, provider, mode) as client:
                assert client.protocol_version == version
                report = structured(
                    await client.call_tool(
                        "get_account_health", {"platform": "meta", "dateRange": "last_7_days"}
                    )
                )
                assert report["cache"] == "hit"
                provider.context.token_expiry_time = time.time() - 1  # refresh, as a metadata-document client
                assert structured(await client.call_tool("get_sync_status", {}))["accounts"]
            assert storage.client_info is not None and storage.client_info.client_id == url
            assert len(storage.history) == 2 and script.authorizations == 1
            # The document was fetched once (then cached), never the daemon's registration endpoint.
            assert docs.hits["/oauth/client.json"] == 1
            [grant] = await daemon.db.run(lambda conn: store.list_grants(conn, "acme"))
            assert grant["clientId"] == url and grant["clientName"] == "Metadata document client"
            [listed] = await daemon.db.run(store.list_clients)
            assert listed["kind"] == "cimd"
