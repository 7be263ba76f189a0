"""`GET /metrics` on a running daemon (SPEC §10, issue 10): the text parses with
prometheus_client's parser, and its counters move when runs finish, tools read the
cache and a platform call fails. A real daemon, real HTTP, the sandbox platforms."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.mcp.daemon_fixture import RunningDaemon, TenantSpec, running_daemon

ACCOUNTS = (("google", "4105550201"), ("meta", "4105550202"), ("tiktok", "7105550000000000203"))
MODERN = "2026-07-28"
META = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.fixture
async def daemon(tmp_path: Path, database_url: str) -> AsyncIterator[RunningDaemon]:
    async with running_daemon(tmp_path, database_url, [TenantSpec("acme", ACCOUNTS)]) as running:
        yield running


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(http: httpx.AsyncClient, daemon: RunningDaemon) -> dict[Any, float]:
    response = await http.get(f"{daemon.base}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def call_tool(http: httpx.AsyncClient, daemon: RunningDaemon, name: str, **arguments: Any) -> Any:
    key = daemon.tenant("acme").key
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {key}",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments, "_meta": META},
    }
    response = await http.post(daemon.url, content=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def test_metrics_parse_and_move_with_runs_tool_calls_and_platform_errors(daemon: RunningDaemon) -> None:
    # The miss below waits for its refresh run's retry (about 30 s), and a tool answers
    # within its own limit (ToolServices.fetch_wait_s, 60 s): the client waits longer than that.
    async with httpx.AsyncClient(timeout=90) as http:
        before = await scrape(http, daemon)
        # Warming the cache ran the sync: its runs are counted, with their durations.
        finished = value(
            before, "deneva_runs_finished_total", function="refresh-tenant-report", status="succeeded"
        )
        assert finished >= len(ACCOUNTS)
        assert (
            value(before, "deneva_run_duration_seconds_count", function="refresh-tenant-report") >= finished
        )
        assert value(before, "deneva_platform_calls_total", platform="google") > 0
        assert ("deneva_queue_depth", ()) in before and ("deneva_heartbeat_age_seconds", ()) in before
        assert value(before, "deneva_http_requests_total", route="/metrics", method="GET", status="200") == 0

        hit = await call_tool(http, daemon, "get_account_health", platform="google", dateRange="last_7_days")
        assert hit["structuredContent"]["cache"] == "hit"
        # A report no fan-out keeps cached, while the platform fails: a miss, then a platform error.
        await daemon.sandbox.faults(
            "google", {"server_error": {"next": 5, "status": 503}, "endpoints": ["searchStream"]}
        )
        failed = await call_tool(
            http, daemon, "get_search_term_waste", platform="google", dateRange="last_90_days"
        )
        assert failed["isError"] is True and "transient" in failed["content"][0]["text"]

        after = await scrape(http, daemon)
    hits = ("deneva_mcp_cache_reads_total", {"tool": "get_account_health", "result": "hit"})
    assert value(after, hits[0], **hits[1]) == value(before, hits[0], **hits[1]) + 1
    misses = ("deneva_mcp_cache_reads_total", {"tool": "get_search_term_waste", "result": "miss"})
    assert value(after, misses[0], **misses[1]) == value(before, misses[0], **misses[1]) + 1
    # The miss went through the refresh run: each attempt it made before answering is counted.
    errors = ("deneva_platform_errors_total", {"platform": "google", "code": "transient"})
    counted = value(after, errors[0], **errors[1]) - value(before, errors[0], **errors[1])
    attempts = await daemon.db.fetchval(
        "SELECT count(*) FROM sync_log WHERE report_type = 'search_term_waste' AND error_code = 'transient'"
    )
    assert counted >= 1 and attempts >= counted
    assert value(after, "deneva_http_requests_total", route="/mcp", method="POST", status="200") >= 2
    assert value(after, "deneva_http_requests_total", route="/metrics", method="GET", status="200") == 1
    assert value(after, "deneva_mcp_sessions_open") == 0  # stateless calls open no session
