"""End to end over the WebSocket transport (/mcp/ws, subprotocol `mcp`) with a trio-websocket
client against a real daemon (tests/mcp/daemon_fixture.py): real HTTP upgrade, a real
database, the sandbox as the ad platforms, a tenant with a warm cache.

Both styles on one socket each: legacy (`initialize` first, the socket is the session)
and stateless (2026-07-28 `_meta` on every request). Each lists the tools, calls every
report tool for a platform offering it, sends a bad argument, refreshes without waiting
and with waiting, the latter with a progressToken while the platform is slow, so
`notifications/progress` arrive on the socket before the result, and asks for the sync
status.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from deneva.mcp.report_tools import REPORT_TOOLS
from tests.mcp.daemon_fixture import (
    TOOL_NAMES,
    RunningDaemon,
    TenantSpec,
    cached_reports,
    report_calls,
    running_daemon,
)

ACCOUNTS = (("google", "5205550101"), ("meta", "5205550102"), ("tiktok", "7205550000000000103"))
MODERN = "2026-07-28"
LEGACY = "2025-11-25"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
# A refresh slow enough that the waiting call reports progress (about once a second) first.
SLOW_PLATFORM_MS = 2500


@pytest.fixture
async def daemon(tmp_path: Path, database_url: str) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(tmp_path, database_url, [TenantSpec("acme", ACCOUNTS)]) as running:
        yield running


class McpSocket:
    """JSON-RPC over one socket: one request at a time, notifications collected on the way."""

    def __init__(self, ws: WebSocketConnection, stateless: bool) -> None:
        self.ws = ws
        self.stateless = stateless
        self.ids = itertools.count(1)
        self.notifications: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_message(json.dumps({"jsonrpc": "2.0", **message}))

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response's result (or error) to a request; notifications before it are kept."""
        params = dict(params or {})
        if self.stateless:
            params["_meta"] = {**META, **params.get("_meta", {})}
        id = next(self.ids)
        await self.send({"id": id, "method": method, "params": params})
        with trio.fail_after(60):
            while True:
                raw = await self.ws.get_message()
                assert isinstance(raw, str)
                message: dict[str, Any] = json.loads(raw)
                if "id" not in message:
                    self.notifications.append(message)
                    continue
                assert message["id"] == id, message
                if self.stateless and "result" in message:
                    assert message["result"]["resultType"] == "complete"
                return message

    async def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message = await self.request(method, params)
        assert "result" in message, message
        result: dict[str, Any] = message["result"]
        return result

    async def call(self, name: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "arguments": arguments}
        if meta:
            params["_meta"] = meta
        return await self.result("tools/call", params)

    async def ok(self, name: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
        """A successful call's structuredContent, checked to be the same JSON as its text."""
        result = await self.call(name, arguments, **meta)
        [content] = result["content"]
        assert result["isError"] is False, content["text"]
        assert content["type"] == "text" and json.loads(content["text"]) == result["structuredContent"]
        structured: dict[str, Any] = result["structuredContent"]
        return structured

    async def error(self, name: str, arguments: dict[str, Any]) -> str:
        result = await self.call(name, arguments)
        assert result["isError"] is True and "structuredContent" not in result, result
        text: str = result["content"][0]["text"]
        return text


@pytest.mark.parametrize("style", ["legacy", "stateless"])
async def test_a_websocket_client_uses_every_tool(daemon: RunningDaemon, style: str) -> None:
    # The daemon's platform adapters share one HTTP client (pool and TLS context made once).
    runtime = daemon.daemon.sync_runtime
    assert runtime is not None and runtime.services is not None and daemon.daemon.platform_http is not None
    assert {id(getattr(a, "http", None)) for a in runtime.services.adapters.values()} == {
        id(daemon.daemon.platform_http)
    }
    tenant = daemon.tenant("acme")
    headers = [(b"authorization", f"Bearer {tenant.key}".encode())]
    async with open_websocket_url(daemon.ws_url, subprotocols=["mcp"], extra_headers=headers) as ws:
        assert ws.subprotocol == "mcp"
        mcp = McpSocket(ws, stateless=style == "stateless")
        if style == "legacy":
            init = await mcp.result(
                "initialize",
                {
                    "protocolVersion": LEGACY,
                    "capabilities": {},
                    "clientInfo": {"name": "e2e", "version": "1"},
                },
            )
            assert init["protocolVersion"] == LEGACY and init["capabilities"]["tools"] is not None
            await mcp.send({"method": "notifications/initialized"})
        else:
            discovered = await mcp.result("server/discover")
            assert MODERN in discovered["supportedVersions"]

        listed = await mcp.result("tools/list")
        assert tuple(t["name"] for t in listed["tools"]) == TOOL_NAMES
        for tool in listed["tools"]:
            assert tool["description"] and tool["inputSchema"]["type"] == "object"
            assert tool["outputSchema"]["type"] == "object"

        for name, platform, date_range in report_calls():
            out = await mcp.ok(name, {"platform": platform, "dateRange": date_range})
            assert out["cache"] == "hit" and "stale" not in out, (name, platform, out)
            assert out["data"]["report"] == REPORT_TOOLS[name] and out["fetchedAt"]
        meta_account = tenant.account("meta")
        named = await mcp.ok(
            "get_budget_optimizer",
            {"platform": "meta", "dateRange": "last_7_days", "accountId": meta_account},
        )
        assert named["cache"] == "hit"

        bad = await mcp.error("get_weekly_anomaly", {"platform": "google", "dateRange": "yesterday"})
        assert "argument 'dateRange'" in bad and "get_weekly_anomaly" in bad
        unknown = await mcp.error(
            "get_account_health", {"platform": "google", "dateRange": "last_7_days", "accountId": "999"}
        )
        assert "accountId" in unknown and "'999' is not connected" in unknown
        missing = await mcp.request("tools/call", {"name": "get_everything", "arguments": {}})
        assert missing["error"]["code"] == -32602 and "get_everything" in missing["error"]["message"]

        queued = await mcp.ok(
            "refresh_report",
            {"platform": "google", "reportType": "quality_score", "dateRange": "last_30_days"},
        )
        assert queued["status"] == "queued" and set(queued) == {"runId", "status"}
        record = await daemon.engine.wait_for_run(uuid.UUID(queued["runId"]), 30)
        assert record.status == "succeeded", record.last_error

        # The platform answers slowly: the waiting call reports progress before its result.
        await daemon.sandbox.faults("tiktok", {"latency_ms": SLOW_PLATFORM_MS, "endpoints": ["report"]})
        mcp.notifications.clear()
        token = f"refresh-{style}"
        done = await mcp.ok(
            "refresh_report",
            {"platform": "tiktok", "reportType": "weekly_anomaly", "dateRange": "last_7_days", "wait": True},
            progressToken=token,
        )
        assert done["status"] == "completed" and done["attempt"] == 1 and done["fetchedAt"]
        progress = [n["params"] for n in mcp.notifications if n["method"] == "notifications/progress"]
        assert progress and all(p["progressToken"] == token and p["total"] == 30 for p in progress)
        assert [p["progress"] for p in progress] == sorted(p["progress"] for p in progress)
        assert "running" in progress[0]["message"] or "queued" in progress[0]["message"]
        hit = await mcp.ok("get_weekly_anomaly", {"platform": "tiktok", "dateRange": "last_7_days"})
        assert hit["cache"] == "hit" and hit["fetchedAt"] == done["fetchedAt"]

        status = await mcp.ok("get_sync_status", {})
        assert status["recentFailures"] == []
        assert {(a["platform"], a["accountId"]) for a in status["accounts"]} == set(tenant.accounts)
        for account in status["accounts"]:
            assert account["healthy"] is True
            cached = {(r["reportType"], r["dateRange"]) for r in account["reports"]}
            assert cached == set(cached_reports(account["platform"]))
        tiktok = await mcp.ok("get_sync_status", {"platform": "tiktok"})
        assert [a["accountId"] for a in tiktok["accounts"]] == [tenant.account("tiktok")]
