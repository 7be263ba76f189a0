"""End to end with the official MCP Python SDK (`mcp`, its `Client`, on trio) against a real
daemon (tests/mcp/daemon_fixture.py): real HTTP, a real database, the sandbox as the ad
platforms, a tenant connected on Google, Meta and TikTok with a warm cache.

Over Streamable HTTP, in both protocol generations (the 2025-11-25 handshake, the
stateless 2026-07-28, and `auto`, which must pick 2026-07-28): list the tools, call every
report tool for a platform that offers it, a bad argument, `refresh_report` with and
without `wait`, `get_sync_status`. Then once through `deneva bridge` with the SDK's stdio
client, as a stdio-only desktop client would reach the daemon's /mcp/ws.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
import trio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from deneva.catalog import DATE_RANGES
from deneva.catalog import REPORT_TYPES as SERVED
from deneva.demo import DEMO_ACCOUNTS, DEMO_TENANT
from deneva.mcp.report_tools import (
    PORTFOLIO_INPUT,
    PORTFOLIO_OUTPUT,
    REFRESH_INPUT,
    REFRESH_OUTPUT,
    REPORT_INPUT,
    REPORT_OUTPUT,
    REPORT_TOOLS,
    STATUS_INPUT,
    STATUS_OUTPUT,
)
from tests.mcp.daemon_fixture import (
    PLATFORMS,
    TOOL_NAMES,
    RunningDaemon,
    TenantInfo,
    TenantSpec,
    cached_reports,
    report_calls,
    running_daemon,
)

ACCOUNTS = (("google", "4105550101"), ("meta", "4105550102"), ("tiktok", "7105550000000000103"))
SCHEMAS = {
    **{name: (REPORT_INPUT, REPORT_OUTPUT) for name in REPORT_TOOLS},
    "get_portfolio_overview": (PORTFOLIO_INPUT, PORTFOLIO_OUTPUT),
    "refresh_report": (REFRESH_INPUT, REFRESH_OUTPUT),
    "get_sync_status": (STATUS_INPUT, STATUS_OUTPUT),
}
LEGACY = "2025-11-25"
# A refresh slow enough that the waiting call reports progress (about once a second) first.
SLOW_PLATFORM_MS = 2000
MODERN = "2026-07-28"


@pytest.fixture
async def daemon(tmp_path: Path, database_url: str) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(tmp_path, database_url, [TenantSpec("acme", ACCOUNTS)]) as running:
        yield running


@asynccontextmanager
async def sdk_client(daemon: RunningDaemon, key: str, mode: str) -> AsyncIterator[Client]:
    """The SDK's Client on its Streamable HTTP transport, the API key in an httpx2 client."""
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(daemon.url, http_client=http), mode=mode) as client,
    ):
        yield client


def structured(result: CallToolResult) -> dict[str, Any]:
    """A successful result's structuredContent, checked to be the same JSON as its text."""
    text = result.content[0]
    assert isinstance(text, TextContent)
    assert result.is_error is False, text.text
    assert isinstance(result.structured_content, dict)
    assert json.loads(text.text) == result.structured_content
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error is True
    assert result.structured_content is None
    text = result.content[0]
    assert isinstance(text, TextContent)
    return text.text


async def exercise(client: Client, daemon: RunningDaemon, tenant: TenantInfo) -> None:
    """Everything a client does with deneva's tools, checked."""
    listed = await client.list_tools()
    assert tuple(t.name for t in listed.tools) == TOOL_NAMES
    for listed_tool in listed.tools:
        assert listed_tool.description
        # The SDK parses the annotations: every tool says whether it only reads.
        assert listed_tool.title and listed_tool.annotations is not None
        assert listed_tool.annotations.read_only_hint is (listed_tool.name != "refresh_report")
        assert (listed_tool.input_schema, listed_tool.output_schema) == SCHEMAS[listed_tool.name]
        hints = listed_tool.annotations
        assert hints is not None and hints.destructive_hint is False and hints.title
        assert hints.read_only_hint is (listed_tool.name != "refresh_report")

    calls = report_calls()
    assert {tool for tool, _, _ in calls} == set(REPORT_TOOLS)
    assert {platform for _, platform, _ in calls} == set(PLATFORMS)
    for tool, platform, date_range in calls:
        out = structured(await client.call_tool(tool, {"platform": platform, "dateRange": date_range}))
        assert {"data", "cache", "fetchedAt"} <= set(out), (tool, platform)
        assert out["cache"] == "hit" and "stale" not in out, (tool, platform, out)  # the cache is warm
        assert out["data"]["report"] == REPORT_TOOLS[tool]
        assert out["fetchedAt"].endswith("+00:00")
    google = tenant.account("google")
    named = structured(
        await client.call_tool(
            "get_account_health", {"platform": "google", "dateRange": "last_7_days", "accountId": google}
        )
    )
    assert named["cache"] == "hit"

    bad = error_text(
        await client.call_tool("get_account_health", {"platform": "bing", "dateRange": "last_7_days"})
    )
    assert "argument 'platform'" in bad and "get_account_health" in bad
    bad = error_text(
        await client.call_tool(
            "refresh_report",
            {"platform": "google", "reportType": "account_health", "dateRange": "last_7_days", "timeoutS": 0},
        )
    )
    assert "argument 'timeoutS' must be >= 1" in bad
    not_offered = error_text(
        await client.call_tool("get_search_term_waste", {"platform": "meta", "dateRange": "last_7_days"})
    )
    assert "meta" in not_offered and "search_term_waste" in not_offered

    queued = structured(
        await client.call_tool(
            "refresh_report", {"platform": "meta", "reportType": "weekly_anomaly", "dateRange": "last_7_days"}
        )
    )
    assert queued["status"] == "queued" and set(queued) == {"runId", "status"}
    record = await daemon.engine.wait_for_run(uuid.UUID(queued["runId"]), 30)
    assert record.status == "succeeded", record.last_error

    # With a progress callback the SDK sends a progressToken, so /mcp answers this call as an
    # SSE stream: progress while the (slow) platform answers, then the result.
    await daemon.sandbox.faults("tiktok", {"latency_ms": SLOW_PLATFORM_MS, "endpoints": ["report"]})
    reported: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append((progress, total, message))

    done = structured(
        await client.call_tool(
            "refresh_report",
            {"platform": "tiktok", "reportType": "account_health", "dateRange": "last_7_days", "wait": True},
            progress_callback=on_progress,
        )
    )
    assert done["status"] == "completed" and done["attempt"] == 1 and done["fetchedAt"]
    assert reported and all(total == 30 and "refresh" in (m or "") for _, total, m in reported), reported
    await daemon.sandbox.faults("tiktok", {})
    assert done["runId"] != queued["runId"]
    hit = structured(
        await client.call_tool("get_account_health", {"platform": "tiktok", "dateRange": "last_7_days"})
    )
    assert hit["cache"] == "hit" and hit["fetchedAt"] == done["fetchedAt"]

    status = structured(await client.call_tool("get_sync_status", {}))
    assert status["recentFailures"] == []
    by_platform = {a["platform"]: a for a in status["accounts"]}
    assert {(p, a["accountId"]) for p, a in by_platform.items()} == set(tenant.accounts)
    for platform, account in by_platform.items():
        assert account["healthy"] is True and account["lastSuccessAt"]
        cached = {(r["reportType"], r["dateRange"]) for r in account["reports"]}
        assert cached == set(cached_reports(platform))
    only_meta = structured(await client.call_tool("get_sync_status", {"platform": "meta"}))
    assert only_meta["accounts"] == [by_platform["meta"]]


@pytest.mark.parametrize(("mode", "version"), [("legacy", LEGACY), (MODERN, MODERN), ("auto", MODERN)])
async def test_the_sdk_client_over_streamable_http(daemon: RunningDaemon, mode: str, version: str) -> None:
    tenant = daemon.tenant("acme")
    assert daemon.daemon.mcp is not None
    sessions = daemon.daemon.mcp.http.server.sessions
    async with sdk_client(daemon, tenant.key, mode) as client:
        assert client.protocol_version == version
        assert len(sessions) == (1 if mode == "legacy" else 0)  # 2026-07-28 is sessionless
        await exercise(client, daemon, tenant)
    assert len(sessions) == 0  # the legacy client ended its session (DELETE)


async def test_the_sdk_stdio_client_through_the_bridge_to_the_websocket(daemon: RunningDaemon) -> None:
    tenant = daemon.tenant("acme")
    env = {k: v for k, v in os.environ.items() if k != "DENEVA_API_KEY"}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "deneva", "bridge", daemon.ws_url],
        env={**env, "DENEVA_API_KEY": tenant.key},
    )
    with trio.fail_after(60):
        async with Client(params, mode="legacy") as client:
            assert client.protocol_version == LEGACY
            await exercise(client, daemon, tenant)


def _comparisons_filled_in(tool: str, platform: str, date_range: str, data: dict[str, Any]) -> None:
    """The comparisons a report makes are there, or (only where the sandbox's 120 days cannot
    fill them) said to be impossible."""
    what = (tool, platform, date_range)
    assert data["has_data"] is True, what
    if data["report"] == "account_health":
        wow = data["week_over_week"]
        assert wow["prior_7_days"]["coverage"] == "complete", what
        assert all(wow["change_pct"][m] is not None for m in ("spend", "clicks", "conversions")), what
        if date_range == "last_90_days":  # the previous 90 days need 180: the sandbox has 120
            assert data["previous_period"]["coverage"] == "partial", what
            assert "previous_period_partial" in {f["code"] for f in data["flags"]}, what
        else:
            assert data["previous_period"]["coverage"] == "complete", what
            assert all(data["period_change_pct"][m] is not None for m in ("spend", "clicks")), what
            assert "n/a" not in data["summary"], (what, data["summary"])
    elif data["report"] == "weekly_anomaly":
        assert data["baseline"]["coverage"] == "complete", what
        assert "Not enough history" not in data["summary"], (what, data["summary"])
        assert all(w["status"] != "insufficient_history" for w in data["account_week"]), what


async def test_on_the_demo_accounts_every_report_and_range_compares_through_the_sdk_client(
    tmp_path: Path, database_url: str
) -> None:
    spec = TenantSpec(DEMO_TENANT, tuple(DEMO_ACCOUNTS.items()))
    async with running_daemon(tmp_path, database_url, [spec]) as daemon:
        tenant = daemon.tenant(DEMO_TENANT)
        async with sdk_client(daemon, tenant.key, MODERN) as client:
            walked = 0
            for tool, report_type in REPORT_TOOLS.items():
                for platform in PLATFORMS:
                    if report_type not in SERVED[platform]:
                        continue
                    for date_range in DATE_RANGES:
                        args = {"platform": platform, "dateRange": date_range}
                        out = structured(await client.call_tool(tool, args))
                        _comparisons_filled_in(tool, platform, date_range, out["data"])
                        walked += 1
            assert walked == 7 * 3 + 3 * 3 * 2
            portfolio = structured(
                await client.call_tool("get_portfolio_overview", {"dateRange": "last_30_days"})
            )
            health = {
                p: structured(
                    await client.call_tool("get_account_health", {"platform": p, "dateRange": "last_30_days"})
                )["data"]
                for p in PLATFORMS
            }
    data = portfolio["data"]
    assert portfolio["cache"] == "hit" and data["pending_accounts"] == 0
    per_currency: dict[str, float] = {}
    for platform, report in health.items():
        per_currency[report["currency"]] = (
            per_currency.get(report["currency"], 0.0) + report["totals"]["cost"]
        )
        (row,) = [a for a in data["accounts"] if a["platform"] == platform]
        assert row["spend"] == report["totals"]["cost"]
    assert {g["currency"]: g["spend"] for g in data["blended"]} == pytest.approx(per_currency, abs=0.03)
