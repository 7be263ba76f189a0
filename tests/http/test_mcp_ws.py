"""MCP over WebSocket at /mcp/ws (SEP-1288 draft), with a trio-websocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from deneva.db import Database
from deneva.tenants import revoke_key
from tests.http.mcp_fixtures import McpTestServer, mcp_test_server

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture
async def srv(db: Database) -> AsyncIterator[McpTestServer]:
    async with mcp_test_server(db) as server:
        yield server


def rpc(id: int | str | None, method: str, **params: Any) -> str:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        body["id"] = id
    return json.dumps(body)


def bearer(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"Bearer {key}".encode())]


async def receive(ws: WebSocketConnection) -> dict[str, Any]:
    with trio.fail_after(5):
        message = await ws.get_message()
    assert isinstance(message, str)
    result: dict[str, Any] = json.loads(message)
    return result


async def initialize(ws: WebSocketConnection) -> None:
    await ws.send_message(
        rpc(1, "initialize", protocolVersion="2025-06-18", capabilities={}, clientInfo={"name": "t"})
    )
    answer = await receive(ws)
    assert answer["result"]["protocolVersion"] == "2025-06-18"
    await ws.send_message(rpc(None, "notifications/initialized"))


async def test_session_over_a_socket(srv: McpTestServer) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        assert ws.subprotocol == "mcp"
        await ws.send_message(rpc(1, "tools/list"))
        assert (await receive(ws))["error"]["code"] == -32600  # before initialize
        await ws.send_message(rpc(0, "ping"))
        assert (await receive(ws))["result"] == {}
        await initialize(ws)
        await ws.send_message(rpc(2, "tools/list"))
        assert len((await receive(ws))["result"]["tools"]) == 3
        await ws.send_message(rpc(3, "tools/call", name="whoami"))
        assert (await receive(ws))["result"]["structuredContent"] == {"tenant": srv.tenant_a}
        await ws.send_message("{not json")
        assert (await receive(ws))["error"]["code"] == -32700
        await ws.send_message(json.dumps([{"jsonrpc": "2.0", "id": 4, "method": "ping"}]))
        assert (await receive(ws))["error"]["code"] == -32600
        await ws.send_message(rpc(5, "tools/call", name="add", arguments={"a": 1}))
        assert (await receive(ws))["result"]["isError"] is True


async def test_stateless_requests_over_a_socket(srv: McpTestServer) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_b)) as ws:
        await ws.send_message(rpc(1, "server/discover", _meta=META))
        assert (await receive(ws))["result"]["supportedVersions"][0] == "2026-07-28"
        await ws.send_message(rpc(2, "tools/call", name="whoami", _meta=META))
        answer = await receive(ws)
        assert answer["result"]["structuredContent"] == {"tenant": srv.tenant_b}
        assert answer["result"]["resultType"] == "complete"
        future = {**META, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}
        await ws.send_message(rpc(3, "tools/list", _meta=future))
        assert (await receive(ws))["error"]["code"] == -32022


async def test_progress_ping_and_cancel_while_a_tool_waits(srv: McpTestServer) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        await initialize(ws)
        await ws.send_message(rpc(7, "tools/call", name="slow", _meta={"progressToken": "tok"}))
        progress = await receive(ws)
        assert progress["method"] == "notifications/progress" and progress["params"]["progressToken"] == "tok"
        await ws.send_message(rpc(8, "ping"))
        assert (await receive(ws))["id"] == 8  # served while the call waits
        await ws.send_message(rpc(None, "notifications/cancelled", requestId=7))
        cancelled = await receive(ws)
        assert cancelled["id"] == 7 and cancelled["error"]["code"] == -32800
        assert srv.slow.cancelled.is_set()


async def test_handshake_refusals(srv: McpTestServer) -> None:
    with pytest.raises(ConnectionRejected) as no_protocol:
        async with open_websocket_url(srv.ws_url, extra_headers=bearer(srv.key_a)):
            pass
    assert no_protocol.value.status_code == 400
    with pytest.raises(ConnectionRejected) as no_key:
        async with open_websocket_url(srv.ws_url, subprotocols=["mcp"]):
            pass
    assert no_key.value.status_code == 401
    with pytest.raises(ConnectionRejected) as foreign:
        headers = [*bearer(srv.key_a), (b"origin", b"http://evil.example")]
        async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=headers):
            pass
    assert foreign.value.status_code == 403
    # Browsers cannot send headers: the key may ride in a subprotocol, which is never echoed.
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp", f"mcp.auth.{srv.key_b}"]) as ws:
        assert ws.subprotocol == "mcp"
        await ws.send_message(rpc(1, "tools/call", name="whoami", _meta=META))
        assert (await receive(ws))["result"]["structuredContent"] == {"tenant": srv.tenant_b}


async def test_binary_frames_close_the_socket(srv: McpTestServer) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        await ws.send_message(b"\x00\x01")
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1003


async def test_a_revoked_key_ends_the_socket(srv: McpTestServer, db: Database) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        await initialize(ws)
        await db.run(lambda conn: revoke_key(conn, srv.key_a))
        await ws.send_message(rpc(2, "tools/list"))
        answer = await receive(ws)
        assert "revoked" in answer["error"]["message"]
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1008


async def test_drain_closes_sockets_with_going_away(srv: McpTestServer) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        await initialize(ws)
        srv.drain.set()
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1001


async def test_frames_over_the_limit_close_the_socket(srv: McpTestServer) -> None:
    async with open_websocket_url(
        srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a), max_message_size=4 * 1024 * 1024
    ) as ws:
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            await ws.send_message(rpc(1, "ping", padding="x" * (2 * 1024 * 1024)))
            await ws.get_message()
    assert closed.value.reason is not None and closed.value.reason.code == 1009
