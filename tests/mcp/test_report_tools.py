"""The MCP report tools (SPEC §9) against the real database, the real engine and the real
sandbox over HTTP, in virtual time: hits in one database crossing, misses fetched once and
stored, typed platform errors, account resolution, refresh with and without waiting,
sync status, and tenants that never see each other's rows."""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from deneva import tenants
from deneva.adapters import adapters_for
from deneva.adapters.meta import MetaAds
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import AsyncioThread, Database
from deneva.engine.engine import Engine
from deneva.engine.functions import Backoff, Registry
from deneva.functions import register_sync
from deneva.mcp.jsonrpc import JsonObject, encode, result_response
from deneva.mcp.report_reads import MAX_IN_FLIGHT
from deneva.mcp.report_tools import REPORT_TOOLS, ToolServices, build_tools
from deneva.mcp.tools import ToolContext, ToolRegistry
from deneva.sync.model import REFRESH_EVENT, SyncRuntime, SyncServices
from tests.adapters import conftest as adapter_fixtures
from tests.adapters.conftest import (
    ACCOUNTS,
    GOOGLE_REFRESH,
    META_TOKEN,
    TIKTOK_TOKEN,
    TODAY,
    FakeClock,
    Sandbox,
    sandbox_config,
)
from tests.engine.conftest import running_engine
from tests.mcp.test_report_reads import credentials_locked

KEYS = Keyring(os.urandom(32))
GOOGLE = ACCOUNTS["google"]
OTHER_GOOGLE = "2222222222"
TOKENS = {
    "google": PlainTokens(GOOGLE_REFRESH, None),
    "meta": PlainTokens(None, META_TOKEN),
    "tiktok": PlainTokens(None, TIKTOK_TOKEN),
}


# The real sandbox on 127.0.0.1:0 in the test's nursery, tokens registered (tests/adapters).
sandbox = adapter_fixtures.sandbox


@attrs.define
class Env:
    db: Database
    engine: Engine
    tools: ToolRegistry
    sandbox: Sandbox
    services: ToolServices

    async def call(self, tenant: uuid.UUID, name: str, **arguments: Any) -> JsonObject:
        answer = await self.tools.call_tool(name, arguments, ToolContext(tenant_id=str(tenant)))
        # As the client sees it: cached reports are spliced in as JSON text when encoding.
        result: JsonObject = json.loads(encode(result_response(1, answer)))["result"]
        if not result["isError"]:
            # The same JSON as text (SPEC §9).
            assert json.loads(result["content"][0]["text"]) == result["structuredContent"]
        return result

    async def ok(self, tenant: uuid.UUID, name: str, **arguments: Any) -> JsonObject:
        result = await self.call(tenant, name, **arguments)
        assert result["isError"] is False, result["content"][0]["text"]
        structured: JsonObject = result["structuredContent"]
        return structured

    async def error(self, tenant: uuid.UUID, name: str, **arguments: Any) -> str:
        result = await self.call(tenant, name, **arguments)
        assert result["isError"] is True, result
        assert "structuredContent" not in result
        text: str = result["content"][0]["text"]
        assert "Traceback" not in text and "Error(" not in text
        return text

    async def searches(self) -> int:
        return await self.sandbox.calls("google", "searchStream")


QUICK_RETRIES = Backoff(base_s=0.01, factor=1, max_s=0.01, jitter=0)


@asynccontextmanager
async def tool_env(db: Database, sandbox: Sandbox, backoff: Backoff = QUICK_RETRIES) -> AsyncIterator[Env]:
    """The tools over a running engine whose refresh worker talks to the sandbox."""
    registry = Registry()
    runtime = SyncRuntime()
    register_sync(registry, runtime, backoff=backoff)
    # Timeouts above the slowest latency a test sets on the sandbox (virtual seconds).
    adapters = adapters_for(
        sandbox_config(sandbox.url, FakeClock(), request_timeout_s=60, operation_timeout_s=120)
    )
    async with running_engine(db, registry, scheduler=False, poll_s=600, rescue_every_s=600) as engine:
        runtime.services = SyncServices(db, KEYS, adapters, engine.clock, today=lambda: TODAY)
        services = ToolServices(db=db, engine=lambda: engine, clock=engine.clock, sync=runtime.get, owner="t")
        yield Env(db, engine, build_tools(services), sandbox, services)


async def _tenant(db: Database, name: str, *connections: tuple[str, str]) -> uuid.UUID:
    tenant = await db.transaction(lambda c: tenants.add_tenant(c, name))
    for platform, account in connections:
        await db.transaction(
            lambda c, p=platform, a=account: store_credential(c, KEYS, name, p, a, TOKENS[p])  # type: ignore[misc]
        )
    return tenant.id


class Crossings:
    """Database crossings made by the calling task (background actors are not counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.task: trio.lowlevel.Task | None = None
        original = AsyncioThread.call

        async def counting(bridge: AsyncioThread, fn: Any, *args: Any) -> Any:
            if trio.lowlevel.current_task() is self.task:
                self.count += 1
            return await original(bridge, fn, *args)

        monkeypatch.setattr(AsyncioThread, "call", counting)

    def start(self) -> None:
        self.task, self.count = trio.lowlevel.current_task(), 0


def test_every_tool_has_closed_input_and_object_output_schemas() -> None:
    services = ToolServices(db=None, engine=None, clock=None, sync=None, owner="t")  # type: ignore[arg-type]
    listed = build_tools(services).list_tools()["tools"]
    assert [t["name"] for t in listed] == sorted(
        [*REPORT_TOOLS, "get_portfolio_overview", "refresh_report", "get_sync_status"]
    )
    for tool in listed:
        assert tool["title"] and tool["annotations"]["title"] == tool["title"]
        assert tool["inputSchema"]["type"] == "object"
        assert tool["inputSchema"]["additionalProperties"] is False
        assert tool["outputSchema"]["type"] == "object" and tool["outputSchema"]["properties"]
        assert tool["description"]
    by_name = {t["name"]: t for t in listed}
    for name in REPORT_TOOLS:
        assert by_name[name]["annotations"]["readOnlyHint"] is True
        assert by_name[name]["annotations"]["openWorldHint"] is True  # a miss calls the platform
    assert by_name["get_sync_status"]["annotations"]["readOnlyHint"] is True
    assert by_name["get_sync_status"]["annotations"]["openWorldHint"] is False
    refresh = by_name["refresh_report"]["annotations"]
    assert refresh["idempotentHint"] is True and refresh["readOnlyHint"] is False
    assert refresh["openWorldHint"] is True and refresh["destructiveHint"] is False
    tools = build_tools(services)
    assert tools.scope_of("refresh_report") == "reports:refresh"
    assert {tools.scope_of(n) for n in (*REPORT_TOOLS, "get_sync_status")} == {"reports:read"}
    assert tools.scopes == ["reports:read", "reports:refresh"]
    report = by_name["get_account_health"]
    assert report["inputSchema"]["required"] == ["platform", "dateRange"]
    assert report["outputSchema"]["required"] == ["data", "cache", "fetchedAt"]


async def test_a_miss_is_fetched_once_and_stored_then_a_hit_is_one_database_crossing(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    crossings = Crossings(monkeypatch)
    async with tool_env(db, sandbox) as env:
        miss = await env.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert miss["cache"] == "miss" and miss["data"]["report"] == "account_health"
        assert "stale" not in miss and "lastFailureCode" not in miss
        assert miss["fetchedAt"].startswith("2026-01-01T")
        fetched = await env.searches()
        assert fetched >= 1
        stored = await db.fetchrow("SELECT payload, is_stale FROM metric_cache")
        assert stored is not None and stored["payload"] == miss["data"] and stored["is_stale"] is False

        crossings.start()
        hit = await env.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert crossings.count == 1
        assert hit == {**miss, "cache": "hit"}
        assert await env.searches() == fetched  # served from the cache


@pytest.mark.parametrize(("tool", "report_type"), sorted(REPORT_TOOLS.items()))
async def test_every_report_tool_serves_its_analysis(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock, tool: str, report_type: str
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    async with tool_env(db, sandbox) as env:
        first = await env.ok(acme, tool, platform="google", dateRange="last_30_days")
        again = await env.ok(acme, tool, platform="google", dateRange="last_30_days", accountId=GOOGLE)
    assert first["cache"] == "miss" and again["cache"] == "hit"
    assert first["data"]["report"] == report_type and again["data"] == first["data"]


async def test_meta_and_tiktok_serve_their_campaign_reports(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("meta", ACCOUNTS["meta"]), ("tiktok", ACCOUNTS["tiktok"]))
    async with tool_env(db, sandbox) as env:
        meta = await env.ok(acme, "get_weekly_anomaly", platform="meta", dateRange="last_7_days")
        tiktok = await env.ok(acme, "get_budget_optimizer", platform="tiktok", dateRange="last_90_days")
    assert meta["data"]["report"] == "weekly_anomaly" and tiktok["data"]["report"] == "budget_optimizer"


async def test_a_report_the_platform_does_not_offer_is_a_tool_error_naming_it(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("meta", ACCOUNTS["meta"]))
    async with tool_env(db, sandbox) as env:
        text = await env.error(acme, "get_search_term_waste", platform="meta", dateRange="last_7_days")
        assert "meta" in text and "search_term_waste" in text and "no search terms" in text
        text = await env.error(
            acme, "refresh_report", platform="tiktok", reportType="pmax_breakdown", dateRange="last_7_days"
        )
        assert "tiktok" in text and "pmax_breakdown" in text


async def test_account_resolution_errors_name_the_platform_and_list_accounts(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE), ("google", OTHER_GOOGLE))
    async with tool_env(db, sandbox) as env:
        text = await env.error(acme, "get_account_health", platform="tiktok", dateRange="last_7_days")
        assert "tiktok is not connected" in text
        text = await env.error(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert "Several google accounts" in text and "accountId" in text
        assert GOOGLE in text and OTHER_GOOGLE in text
        text = await env.error(
            acme, "get_account_health", platform="google", dateRange="last_7_days", accountId="999"
        )
        assert "accountId" in text and "'999' is not connected" in text and GOOGLE in text
        picked = await env.ok(
            acme, "get_account_health", platform="google", dateRange="last_7_days", accountId=OTHER_GOOGLE
        )
        assert picked["cache"] == "miss"
        text = await env.error(
            acme, "refresh_report", platform="google", reportType="account_health", dateRange="last_7_days"
        )
        assert "Several google accounts" in text
    rows = await db.fetch("SELECT account_id FROM metric_cache")
    assert [r["account_id"] for r in rows] == [OTHER_GOOGLE]


@pytest.mark.parametrize(
    ("tool", "arguments", "needle"),
    [
        ("get_account_health", {"dateRange": "last_7_days"}, "missing required argument 'platform'"),
        ("get_account_health", {"platform": "bing", "dateRange": "last_7_days"}, "argument 'platform'"),
        ("get_account_health", {"platform": "google", "dateRange": "yesterday"}, "argument 'dateRange'"),
        ("get_account_health", {"platform": "google", "dateRange": "last_7_days", "x": 1}, "argument 'x'"),
        (
            "get_account_health",
            {"platform": "google", "dateRange": "last_7_days", "accountId": ""},
            "argument 'accountId'",
        ),
        *(
            (
                tool,
                {"platform": platform, "dateRange": "last_7_days", "accountId": account}
                | ({"reportType": "account_health"} if tool == "refresh_report" else {}),
                needle,
            )
            for tool in ("get_account_health", "refresh_report")
            for platform, account, needle in [
                ("google", "12\x0034", "argument 'accountId' must match the pattern"),
                ("google", "\x00", "argument 'accountId' must match the pattern"),
                ("meta", "1001\n", "argument 'accountId' must match the pattern"),
                ("tiktok", "70\ud80001", "argument 'accountId' must match the pattern"),
                ("tiktok", "7" * 25, "argument 'accountId' must be at most 24 characters"),
                ("google", "act_1234567890", "argument 'accountId' must be a Google Ads customer id"),
                ("meta", "123-456-7890", "argument 'accountId' must be a Meta ad account id"),
                ("tiktok", "act_7000", "argument 'accountId' must be a TikTok advertiser id"),
            ]
        ),
        (
            "refresh_report",
            {"platform": "google", "reportType": "everything", "dateRange": "last_7_days"},
            "argument 'reportType'",
        ),
        (
            "refresh_report",
            {"platform": "google", "reportType": "account_health", "dateRange": "last_7_days", "timeoutS": 0},
            "argument 'timeoutS' must be >= 1",
        ),
        (
            "refresh_report",
            {
                "platform": "google",
                "reportType": "account_health",
                "dateRange": "last_7_days",
                "timeoutS": 301,
            },
            "argument 'timeoutS' must be <= 300",
        ),
        (
            "refresh_report",
            {"platform": "google", "reportType": "account_health", "dateRange": "last_7_days", "wait": "yes"},
            "argument 'wait' must be a boolean",
        ),
        ("get_sync_status", {"platform": "myspace"}, "argument 'platform'"),
    ],
)
async def test_bad_arguments_are_tool_errors_naming_the_argument(
    db: Database, sandbox: Sandbox, tool: str, arguments: dict[str, Any], needle: str
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    async with tool_env(db, sandbox) as env:
        text = await env.error(acme, tool, **arguments)
    assert needle in text and tool in text
    assert await db.fetchval("SELECT count(*) FROM engine_runs") == 0


async def test_a_bad_account_id_is_refused_and_another_tenants_calls_queued_with_it_succeed(
    db: Database, database_url: str, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    # Every read slot is taken (blocked on a lock another session holds) while acme calls
    # with a NUL in accountId and globex makes six calls: they queue for the same batch.
    # Before accountId was validated, the NUL went into that batch's statement, Postgres
    # rejected it, and all seven calls failed.
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    globex = await _tenant(db, "globex", ("google", OTHER_GOOGLE))
    args = {"platform": "google", "dateRange": "last_7_days"}
    results: dict[str, JsonObject] = {}
    async with tool_env(db, sandbox) as env:
        cached = await env.ok(globex, "get_account_health", **args)  # later calls are hits
        reads = env.services.reads

        async def call(name: str, tenant: uuid.UUID, **extra: Any) -> None:
            results[name] = await env.call(tenant, "get_account_health", **args, **extra)

        with trio.fail_after(600):  # a guard: a stranded call would hang the test
            async with credentials_locked(database_url) as unlock, trio.open_nursery() as nursery:
                for n in range(MAX_IN_FLIGHT):
                    nursery.start_soon(call, f"first-{n}", globex)
                await trio.testing.wait_all_tasks_blocked()
                batches = reads.batches
                nursery.start_soon(functools.partial(call, "bad", acme, accountId="12\x0034"))
                for n in range(6):
                    extra = {"accountId": OTHER_GOOGLE} if n % 2 else {}
                    nursery.start_soon(functools.partial(call, f"globex-{n}", globex, **extra))
                await trio.testing.wait_all_tasks_blocked()
                assert reads.batches == batches and set(results) <= {"bad"}  # globex's calls queued
                await unlock()
        assert reads.batches == batches + 1  # globex's six calls went out together
    bad = results.pop("bad")
    assert bad["isError"] is True and "argument 'accountId'" in bad["content"][0]["text"]
    assert len(results) == MAX_IN_FLIGHT + 6
    for name, result in results.items():
        assert result["isError"] is False, (name, result["content"][0]["text"])
        assert result["structuredContent"] == {**cached, "cache": "hit"}, name


async def test_a_miss_goes_through_the_refresh_run_which_retries_after_the_platforms_retry_after(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    await sandbox.faults(
        "google", {"rate_limit": {"next": 1, "retry_after_s": 7}, "endpoints": ["searchStream"]}
    )
    async with tool_env(db, sandbox) as env:
        started = trio.current_time()
        ok = await env.ok(acme, "get_quality_score", platform="google", dateRange="last_30_days")
        assert ok["cache"] == "miss" and ok["data"]["report"] == "quality_score"
        assert trio.current_time() - started >= 7  # the worker waited out the retry-after
        assert await db.fetchval("SELECT count(*) FROM metric_cache_fetches") == 0  # claim released
    # The miss is logged like every sync: one retried failure, then the success, in one run.
    log = await db.fetch("SELECT run_id, attempt, outcome, error_code FROM sync_log ORDER BY id")
    assert [(r["attempt"], r["outcome"], r["error_code"]) for r in log] == [
        (1, "failure_retry", "rate_limited"),
        (2, "success", None),
    ]
    assert len({r["run_id"] for r in log}) == 1


async def test_a_miss_whose_refresh_fails_is_a_typed_tool_error_and_logged(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
    async with tool_env(db, sandbox) as env:
        text = await env.error(acme, "get_quality_score", platform="google", dateRange="last_30_days")
        assert text.startswith("token_revoked: could not fetch google quality_score") and GOOGLE in text
        assert "reconnect" in text
        assert await db.fetchval("SELECT count(*) FROM metric_cache_fetches") == 0
    outcomes = await db.fetch("SELECT outcome, error_code FROM sync_log")
    assert [(r["outcome"], r["error_code"]) for r in outcomes] == [("failure_final", "token_revoked")]


async def test_a_miss_whose_retry_comes_after_the_time_limit_answers_at_once_and_the_run_carries_on(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    await sandbox.faults(
        "google", {"server_error": {"next": 1, "status": 503}, "endpoints": ["searchStream"]}
    )
    slow_retries = Backoff(base_s=600, factor=1, max_s=600, jitter=0)
    async with tool_env(db, sandbox, backoff=slow_retries) as env:
        started = trio.current_time()
        text = await env.error(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert trio.current_time() - started < 5  # not the whole 60 s: the retry is 10 min away
        assert text.startswith("transient: could not fetch google account_health for account")
        assert re.search(
            r"The refresh tries again in 59[0-9] s \(run [0-9a-f-]{36}\); ask again then\.$", text
        )
        run_id = uuid.UUID(text.split("(run ")[1].split(")")[0])
        assert await db.fetchval("SELECT count(*) FROM metric_cache_fetches") == 0
        record = await env.engine.wait_for_run(run_id, 700)
        assert (record.status, record.attempt) == ("succeeded", 2)
        hit = await env.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert hit["cache"] == "hit"


async def test_a_miss_still_fetching_at_the_time_limit_names_its_run_which_then_stores_the_row(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    await sandbox.faults("google", {"latency_ms": 10_000, "endpoints": ["searchStream"]})
    async with tool_env(db, sandbox) as env:
        env.services = attrs.evolve(env.services, fetch_wait_s=3.0)
        env.tools = build_tools(env.services)
        started = trio.current_time()
        text = await env.error(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert trio.current_time() - started < 4
        assert text.startswith("transient: google account_health for account") and "refresh run" in text
        run_id = uuid.UUID(text.split("refresh run ")[1].split(",")[0])
        record = await env.engine.wait_for_run(run_id, 120)
        assert record.status == "succeeded"
        hit = await env.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert hit["cache"] == "hit"


async def test_exhaustion_serves_stale_rows_with_the_failure_code_and_a_revoked_miss_is_not_fetched(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    args = {"platform": "google", "dateRange": "last_7_days"}
    async with tool_env(db, sandbox) as env:
        fresh = await env.ok(acme, "get_account_health", **args)
        await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
        failed = await env.ok(
            acme, "refresh_report", reportType="account_health", wait=True, timeoutS=60, **args
        )
        assert failed["status"] == "failed" and failed["errorCode"] == "token_revoked"
        assert failed["error"] and failed["attempt"] == 1

        stale = await env.ok(acme, "get_account_health", **args)
        assert stale == {**fresh, "cache": "hit", "stale": True, "lastFailureCode": "token_revoked"}
        searches = await env.searches()
        text = await env.error(acme, "get_account_health", platform="google", dateRange="last_90_days")
        assert text.startswith("token_revoked:") and "reconnect" in text
        assert await env.searches() == searches  # not asked again: it would only refuse again


async def test_an_expired_row_is_served_stale_at_once(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("tiktok", ACCOUNTS["tiktok"]))
    args = {"platform": "tiktok", "dateRange": "last_7_days"}
    async with tool_env(db, sandbox) as env:
        first = await env.ok(acme, "get_account_health", **args)
        await trio.sleep(2 * 3600 + 1)  # tiktok account_health lives 2 h
        later = await env.ok(acme, "get_account_health", **args)
    assert later == {**first, "cache": "hit", "stale": True}


async def test_refresh_without_wait_answers_queued_with_one_send_and_the_run_completes(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    crossings = Crossings(monkeypatch)
    async with tool_env(db, sandbox) as env:
        crossings.start()
        queued = await env.ok(
            acme, "refresh_report", platform="google", reportType="auction_insights", dateRange="last_30_days"
        )
        assert crossings.count == 2  # resolve the account, send the event
        assert queued["status"] == "queued" and set(queued) == {"runId", "status"}
        run = await env.engine.get_run(uuid.UUID(queued["runId"]))
        assert run.function_id == "refresh-tenant-report"
        assert run.event["name"] == REFRESH_EVENT
        assert run.event["data"] == {
            "tenant_id": str(acme),
            "platform": "google",
            "account_id": GOOGLE,
            "report_type": "auction_insights",
            "date_range": "last_30_days",
            "force": True,
        }
        done = await env.engine.wait_for_run(run.id, 60)
        assert done.status == "succeeded"
        hit = await env.ok(acme, "get_auction_insights", platform="google", dateRange="last_30_days")
        assert hit["cache"] == "hit"


async def test_refresh_with_wait_answers_completed(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("meta", ACCOUNTS["meta"]))
    async with tool_env(db, sandbox) as env:
        done = await env.ok(
            acme,
            "refresh_report",
            platform="meta",
            reportType="account_health",
            dateRange="last_7_days",
            wait=True,
        )
        assert done["status"] == "completed" and done["attempt"] == 1
        assert done["fetchedAt"].startswith("2026-01-01T")
        hit = await env.ok(acme, "get_account_health", platform="meta", dateRange="last_7_days")
    assert hit["cache"] == "hit" and hit["fetchedAt"] == done["fetchedAt"]


async def test_refresh_wait_times_out_while_the_platform_is_slow_and_the_run_still_completes(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    await sandbox.faults("google", {"latency_ms": 10_000, "endpoints": ["searchStream"]})
    progress: list[tuple[float, float | None, str | None]] = []

    async def report(done: float, total: float | None = None, message: str | None = None) -> None:
        progress.append((done, total, message))

    async with tool_env(db, sandbox) as env:
        started = trio.current_time()
        result = await env.tools.call_tool(
            "refresh_report",
            {"platform": "google", "reportType": "account_health", "dateRange": "last_7_days", "wait": True,
             "timeoutS": 3},
            ToolContext(tenant_id=str(acme), progress=report),
        )  # fmt: skip
        assert trio.current_time() - started < 4
        out = result["structuredContent"]
        assert out["status"] == "timed_out_waiting" and out["runStatus"] == "running"
        assert [total for _, total, _ in progress] == [3, 3]  # about once a second
        assert progress[0][0] < progress[1][0] < 3 and "running" in (progress[0][2] or "")
        assert await db.fetchval("SELECT count(*) FROM metric_cache") == 0

        record = await env.engine.wait_for_run(uuid.UUID(out["runId"]), 120)
        assert record.status == "succeeded"
        hit = await env.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert hit["cache"] == "hit"


async def test_sync_status_lists_accounts_reports_and_recent_failures(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE), ("tiktok", ACCOUNTS["tiktok"]))
    async with tool_env(db, sandbox) as env:
        empty = await env.ok(acme, "get_sync_status")
        assert [(a["platform"], a["reports"], a["healthy"]) for a in empty["accounts"]] == [
            ("google", [], True),
            ("tiktok", [], True),
        ]
        assert empty["recentFailures"] == []
        completed = await env.ok(
            acme, "refresh_report", platform="google", reportType="account_health", dateRange="last_7_days",
            wait=True,
        )  # fmt: skip
        assert completed["status"] == "completed"
        await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
        failed = await env.ok(
            acme, "refresh_report", platform="google", reportType="weekly_anomaly", dateRange="last_7_days",
            wait=True,
        )  # fmt: skip
        assert failed["status"] == "failed"
        status = await env.ok(acme, "get_sync_status")
        google_only = await env.ok(acme, "get_sync_status", platform="google")
    google, tiktok = status["accounts"]
    assert google["accountId"] == GOOGLE and google["healthy"] is False
    assert google["lastErrorCode"] == "token_revoked" and google["lastSyncFailureAt"]
    assert google["lastSuccessAt"]
    assert [(r["reportType"], r["dateRange"], r["stale"]) for r in google["reports"]] == [
        ("account_health", "last_7_days", True)
    ]
    assert google["reports"][0]["fetchedAt"] < google["reports"][0]["expiresAt"]
    assert tiktok == {**tiktok, "platform": "tiktok", "healthy": True, "reports": [], "lastSuccessAt": None}
    [failure] = status["recentFailures"]
    assert failure["platform"] == "google" and failure["reportType"] == "weekly_anomaly"
    assert failure["errorCode"] == "token_revoked" and failure["final"] is True and failure["attempt"] == 1
    assert google_only["accounts"] == [google] and google_only["recentFailures"] == [failure]
    # The engine's clock is on 2026-01-01: v26 has 669 days to its projected November 2027.
    assert status["apiVersions"] == {
        "google": {
            "version": "v26",
            "sunset": "2027-11-01",
            "sunsetProjected": True,
            "daysLeft": 669,
            "status": "current",
            "replacement": None,
        },
        "meta": {
            "version": "v27.0",
            "sunset": None,
            "sunsetProjected": None,
            "daysLeft": None,
            "status": "current",
            "replacement": None,
        },
        "tiktok": {
            "version": "v1.3",
            "sunset": None,
            "sunsetProjected": None,
            "daysLeft": None,
            "status": "current",
            "replacement": None,
        },
    }
    assert google_only["apiVersions"] == {"google": status["apiVersions"]["google"]}


class _DayClock:
    """The tools' clock at midnight UTC of a given day (the engine keeps its own)."""

    def __init__(self, day: date) -> None:
        self.day = day

    def now(self) -> float:
        return datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC).timestamp()

    async def sleep_until(self, when: float) -> None:
        raise AssertionError("the tools never sleep on this clock")


async def test_sync_status_shows_a_version_close_to_its_sunset(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("meta", ACCOUNTS["meta"]))
    meta = MetaAds(sandbox_config(sandbox.url, FakeClock(), meta_api_version="v25.0"))
    async with tool_env(db, sandbox) as env:
        sync = attrs.evolve(env.services.get_sync(), adapters={"meta": meta})

        async def status_on(day: date) -> JsonObject:
            services = attrs.evolve(env.services, sync=sync, clock=_DayClock(day))
            versions: JsonObject = (
                await attrs.evolve(env, tools=build_tools(services)).ok(acme, "get_sync_status")
            )["apiVersions"]
            return versions

        # Meta's Marketing API v25.0 expires on 2027-02-23.
        assert (await status_on(date(2026, 12, 1)))["meta"]["status"] == "current"
        soon = await status_on(date(2027, 1, 24))
    assert soon == {
        "meta": {
            "version": "v25.0",
            "sunset": "2027-02-23",
            "sunsetProjected": False,
            "daysLeft": 30,
            "status": "sunsetting",
            "replacement": "v27.0",
        }
    }


async def test_a_tenant_never_sees_another_tenants_rows_even_naming_its_account(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    globex = await _tenant(db, "globex", ("google", OTHER_GOOGLE))
    initech = await _tenant(db, "initech")
    args = {"platform": "google", "dateRange": "last_7_days"}
    async with tool_env(db, sandbox) as env:
        acme_report = await env.ok(acme, "get_account_health", **args)
        searches = await env.searches()
        runs = await db.fetchval("SELECT count(*) FROM engine_runs")  # acme's miss: its refresh run

        text = await env.error(globex, "get_account_health", accountId=GOOGLE, **args)
        assert "'1234567890' is not connected" in text and OTHER_GOOGLE in text
        text = await env.error(initech, "get_account_health", accountId=GOOGLE, **args)
        assert "google is not connected" in text and GOOGLE not in text.replace("'1234567890'", "")
        text = await env.error(
            globex, "refresh_report", reportType="account_health", accountId=GOOGLE, wait=True, **args
        )
        assert "is not connected" in text
        assert await env.searches() == searches  # nothing fetched for acme's account on their behalf
        assert await db.fetchval("SELECT count(*) FROM engine_runs") == runs == 1

        own = await env.ok(globex, "get_account_health", **args)
        assert own["cache"] == "miss" and own["data"] != acme_report["data"]
        status = await env.ok(globex, "get_sync_status")
        assert [a["accountId"] for a in status["accounts"]] == [OTHER_GOOGLE]
        assert [r["reportType"] for r in status["accounts"][0]["reports"]] == ["account_health"]
        nothing = await env.ok(initech, "get_sync_status")
        assert (nothing["accounts"], nothing["recentFailures"]) == ([], [])


async def test_without_sync_services_hits_are_served_and_a_miss_says_why(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    async with tool_env(db, sandbox) as env:
        await env.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        services = ToolServices(db=db, engine=env.engine, clock=env.engine.clock, sync=None, owner="t")
        bare = attrs.evolve(env, tools=build_tools(services))
        hit = await bare.ok(acme, "get_account_health", platform="google", dateRange="last_7_days")
        assert hit["cache"] == "hit"
        text = await bare.error(acme, "get_account_health", platform="google", dateRange="last_30_days")
        assert "not configured" in text


async def test_refresh_report_calls_join_the_queued_refresh_and_are_rate_limited(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    async with tool_env(db, sandbox) as env:
        await env.engine.pause("refresh-tenant-report")  # the refresh stays queued meanwhile
        args = {"platform": "google", "reportType": "account_health", "dateRange": "last_7_days"}
        asked = [await env.ok(acme, "refresh_report", **args) for _ in range(5)]
        assert {a["runId"] for a in asked} == {asked[0]["runId"]} and asked[0]["status"] == "queued"
        for _ in range(55):
            await env.ok(acme, "refresh_report", **args)
        text = await env.error(acme, "refresh_report", **args)  # the 61st within a minute
        assert text.startswith("rate_limited: refresh_report takes at most 60 calls")
        assert "try again in" in text
        runs = await db.fetch("SELECT status FROM engine_runs WHERE function_id = 'refresh-tenant-report'")
        assert [r["status"] for r in runs] == ["queued"]
        await env.engine.resume("refresh-tenant-report")
        ran = await env.engine.wait_for_run(uuid.UUID(asked[0]["runId"]), 600)
        assert ran.status == "succeeded"  # the sixty asks were one refresh
        await trio.sleep(61)  # a minute on, refresh_report takes calls again
        done = await env.ok(acme, "refresh_report", wait=True, timeoutS=60, **args)
        assert done["status"] == "completed" and done["runId"] != asked[0]["runId"]


async def test_portfolio_overview_queues_missing_accounts_then_sums_account_health_per_currency(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    connections = (
        ("google", GOOGLE),
        ("google", OTHER_GOOGLE),
        ("meta", ACCOUNTS["meta"]),
        ("tiktok", ACCOUNTS["tiktok"]),
    )
    acme = await _tenant(db, "acme", *connections)
    args = {"dateRange": "last_30_days"}
    async with tool_env(db, sandbox) as env:
        searches = await env.searches()
        first = await env.ok(acme, "get_portfolio_overview", **args)
        assert first["cache"] == "miss" and first["data"]["pending_accounts"] == 4
        assert {a["status"] for a in first["data"]["accounts"]} == {"pending"}
        assert await env.searches() == searches  # answered from the cache alone
        runs = await db.fetch("SELECT id FROM engine_runs WHERE function_id = 'refresh-tenant-report'")
        assert len(runs) == 4  # one refresh queued per account
        for run in runs:
            assert (await env.engine.wait_for_run(run["id"], 120)).status == "succeeded"

        searches = await env.searches()
        overview = await env.ok(acme, "get_portfolio_overview", **args)
        assert overview["cache"] == "hit" and "stale" not in overview
        assert await env.searches() == searches
        data = overview["data"]
        assert data["pending_accounts"] == 0 and len(data["accounts"]) == 4
        healths = {
            (platform, account): (
                await env.ok(acme, "get_account_health", platform=platform, accountId=account, **args)
            )["data"]
            for platform, account in connections
        }
    # Per account: the account health's numbers; per currency: their sums, never across currencies.
    expected: dict[str, list[float]] = {}
    for row in data["accounts"]:
        health = healths[(row["platform"], row["account_id"])]
        assert row["spend"] == health["totals"]["cost"] and row["currency"] == health["currency"]
        assert row["change_pct"]["spend"] == health["period_change_pct"]["spend"] is not None
        assert row["healthy"] is True and row["fetched_at"] and row["stale"] is False
        sums = expected.setdefault(health["currency"], [0.0, 0.0, 0.0, 0.0])
        sums[0] += health["totals"]["cost"]
        sums[1] += health["totals"]["conversions"]
        sums[2] += health["previous_totals"]["cost"]
        sums[3] += 1
    assert {g["currency"] for g in data["blended"]} == set(expected)
    for group in data["blended"]:
        cost, conversions, previous, count = expected[group["currency"]]
        assert group["accounts"] == count
        assert group["spend"] == pytest.approx(cost, abs=0.011 * count)
        assert group["conversions"] == pytest.approx(conversions, abs=0.011 * count)
        assert group["previous"]["spend"] == pytest.approx(previous, abs=0.011 * count)
        assert group["change_pct"]["spend"] is not None
    assert set(data["by_platform"]) == {"google", "meta", "tiktok"}
    google_total = sum(g["spend"] for g in data["by_platform"]["google"])
    google_accounts = [healths[("google", GOOGLE)], healths[("google", OTHER_GOOGLE)]]
    assert google_total == pytest.approx(sum(h["totals"]["cost"] for h in google_accounts), abs=0.03)


async def test_portfolio_overview_shows_an_unhealthy_account_and_refuses_a_bad_range(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db, "acme", ("google", GOOGLE))
    nobody = await _tenant(db, "initech")
    async with tool_env(db, sandbox) as env:
        await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
        await env.error(acme, "get_account_health", platform="google", dateRange="last_7_days")
        overview = await env.ok(acme, "get_portfolio_overview", dateRange="last_7_days")
        (row,) = overview["data"]["accounts"]
        assert (row["status"], row["healthy"], row["last_error_code"]) == ("pending", False, "token_revoked")
        runs = await db.fetchval("SELECT count(*) FROM engine_runs")
        await env.ok(acme, "get_portfolio_overview", dateRange="last_7_days")
        assert await db.fetchval("SELECT count(*) FROM engine_runs") == runs  # revoked: not asked again
        text = await env.error(acme, "get_portfolio_overview", dateRange="last_365_days")
        assert "argument 'dateRange' must be one of" in text
        text = await env.error(acme, "get_portfolio_overview", platform="google", dateRange="last_7_days")
        assert "unknown argument 'platform'" in text
        empty = await env.ok(nobody, "get_portfolio_overview", dateRange="last_7_days")
        assert empty["data"]["accounts"] == [] and "No ad account is connected" in empty["data"]["summary"]
