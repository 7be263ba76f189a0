"""`deneva bridge URL`: a real subprocess relaying stdio to the daemon over WebSocket and HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from deneva.bridge import header_safe, read_lines
from deneva.db import Database
from tests.http.mcp_fixtures import McpTestServer, mcp_test_server

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture
async def srv(db: Database) -> AsyncIterator[McpTestServer]:
    async with mcp_test_server(db) as server:
        yield server


class Bridge:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self.lines = read_lines(process.stdout)

    async def send(self, id: int | None, method: str, **params: Any) -> None:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if id is not None:
            body["id"] = id
        assert self.process.stdin is not None
        await self.process.stdin.send_all(json.dumps(body).encode() + b"\n")

    async def receive(self) -> dict[str, Any]:
        with trio.fail_after(10):
            line = await self.lines.__anext__()
        message: dict[str, Any] = json.loads(line)
        return message

    async def close_stdin(self) -> int:
        assert self.process.stdin is not None
        await self.process.stdin.aclose()
        with trio.fail_after(10):
            return await self.process.wait()


async def start_bridge(url: str, key: str | None) -> Bridge:
    env = {k: v for k, v in os.environ.items() if k != "DENEVA_API_KEY"}
    if key is not None:
        env["DENEVA_API_KEY"] = key
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "deneva", "bridge", url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    return Bridge(process)


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_bridge_relays_a_session(srv: McpTestServer, transport: str) -> None:
    url = srv.ws_url if transport == "ws" else srv.url
    bridge = await start_bridge(url, srv.key_a)
    await bridge.send(
        1, "initialize", protocolVersion="2025-11-25", capabilities={}, clientInfo={"name": "t"}
    )
    assert (await bridge.receive())["result"]["protocolVersion"] == "2025-11-25"
    await bridge.send(None, "notifications/initialized")
    await bridge.send(2, "tools/call", name="whoami")
    assert (await bridge.receive())["result"]["structuredContent"] == {"tenant": srv.tenant_a}
    await bridge.send(3, "tools/call", name="slow", _meta={"progressToken": "p"})
    progress = await bridge.receive()
    assert progress["method"] == "notifications/progress"
    await bridge.send(4, "tools/call", name="add", arguments={"a": 2, "b": 2})  # not held up by the slow call
    assert (await bridge.receive())["result"]["structuredContent"] == {"sum": 4}
    srv.slow.release.set()
    rest = [await bridge.receive(), await bridge.receive()]
    assert rest[-1]["id"] == 3 and rest[-1]["result"]["structuredContent"] == {"done": True}
    await bridge.send(5, "tools/call", name="whoami", _meta=META)
    assert (await bridge.receive())["result"]["resultType"] == "complete"
    assert await bridge.close_stdin() == 0
    if transport == "http":
        assert len(srv.endpoints.http.server.sessions) == 0  # the session was ended with DELETE


async def test_bridge_turns_http_errors_into_json_rpc_errors(srv: McpTestServer) -> None:
    bridge = await start_bridge(srv.url, "dnv_00000000_" + "x" * 43)
    await bridge.send(1, "initialize", protocolVersion="2025-11-25", capabilities={})
    answer = await bridge.receive()
    assert answer["id"] == 1 and "API key" in answer["error"]["message"]
    assert await bridge.close_stdin() == 0


async def test_bridge_refuses_to_start_without_a_key_or_with_a_refused_socket(srv: McpTestServer) -> None:
    no_key = await start_bridge(srv.ws_url, None)
    assert await no_key.close_stdin() == 1
    assert no_key.process.stderr is not None
    assert b"DENEVA_API_KEY" in await no_key.process.stderr.receive_some(4096)
    refused = await start_bridge(srv.ws_url, "dnv_00000000_" + "x" * 43)
    assert await refused.close_stdin() == 1
    assert refused.process.stderr is not None
    assert b"HTTP 401" in await refused.process.stderr.receive_some(4096)


def test_header_values_are_encoded_when_not_plain_ascii() -> None:
    assert header_safe("get_account_health") == "get_account_health"
    assert header_safe("héllo") == "=?base64?aMOpbGxv?="
    assert header_safe(" padded") == "=?base64?IHBhZGRlZA==?="
    assert header_safe("=?base64?x?=").startswith("=?base64?PT9")
