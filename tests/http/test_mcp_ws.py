"""MCP over WebSocket at /mcp/ws (SEP-1288 draft), with a trio-websocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from deneva.config import Bind, Config
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


async def _until(condition: Callable[[], bool]) -> None:
    """Let the server run until `condition` holds (a guard, not a wait: it holds at once)."""
    with trio.fail_after(5):
        while not condition():
            await trio.testing.wait_all_tasks_blocked()
            await trio.lowlevel.checkpoint()


async def _http_initialize(key: str, url: str) -> int:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t"}},
    }
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.post(url, json=body, headers=headers)).status_code


async def test_sockets_count_toward_the_tenants_session_limit_with_its_http_sessions(
    srv: McpTestServer,
) -> None:
    sessions = srv.endpoints.http.server.sessions
    assert sessions.max_per_tenant == 1_000
    for _ in range(998):  # as if acme had 998 sessions open on /mcp
        sessions.create(srv.tenant_a)
    assert await _http_initialize(srv.key_a, srv.url) == 200  # the 999th
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        await initialize(ws)  # the 1,000th
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)):
                pass
        assert refused.value.status_code == 503
        assert await _http_initialize(srv.key_a, srv.url) == 503
        # Another tenant is not held back by acme's sessions.
        async with open_websocket_url(
            srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_b)
        ) as other:
            await initialize(other)
    # A closed socket gives its place back.
    await _until(lambda: len(sessions) == 999)
    assert await _http_initialize(srv.key_a, srv.url) == 200


async def test_an_idle_socket_is_closed_after_30_minutes_without_a_message(
    srv: McpTestServer, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws:
        await initialize(ws)
        await trio.sleep(29 * 60)  # quiet, but less than the idle timeout
        await ws.send_message(rpc(2, "ping"))
        assert (await receive(ws))["result"] == {}
        last_message = trio.current_time()
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(31 * 60):
            await ws.get_message()
        idle = trio.current_time() - last_message
    assert 30 * 60 <= idle < 30 * 60 + 1
    assert closed.value.reason is not None and closed.value.reason.code == 1000
    assert closed.value.reason.reason == "idle for 1800 s"
    await _until(lambda: len(srv.endpoints.websocket.server.sessions) == 0)


async def test_the_idle_timeout_is_configurable_and_a_socket_waiting_on_its_own_call_is_not_idle(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    config = Config(http_bind=Bind("127.0.0.1", 0), mcp_ws_idle=60.0)
    async with (
        mcp_test_server(db, config) as srv,
        open_websocket_url(srv.ws_url, subprotocols=["mcp"], extra_headers=bearer(srv.key_a)) as ws,
    ):
        await initialize(ws)
        await ws.send_message(rpc(3, "tools/call", name="slow"))
        await srv.slow.started.wait()
        await trio.sleep(5 * 60)  # no message for five times the timeout, but a call under way
        srv.slow.release.set()
        assert (await receive(ws))["result"]["structuredContent"] == {"done": True}
        answered = trio.current_time()
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(120):
            await ws.get_message()
        idle = trio.current_time() - answered
    assert 60 <= idle < 61
    assert closed.value.reason is not None and closed.value.reason.code == 1000
