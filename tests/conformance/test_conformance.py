"""The official MCP conformance suite against a real daemon (issue 5).

The daemon (`deneva.runtime.Daemon`, in this process, on a free loopback port and a
fresh test database, with a provisioned tenant and API key) serves /mcp over real HTTP;
every server scenario of the pinned suite runs against it (suite.py: how the suite is
installed and how the key reaches it). The daemon serves its own tools plus the few
test-only tools some scenarios call by name (`conformance_tools`), added through
`Daemon.mcp_tools` in a subclass, so the product has no test code in it.

Each scenario must pass unless expected-failures.toml lists it with its reason; a listed
scenario must still fail, so the file stays true (one that starts passing must come off
the list).
"""

from __future__ import annotations

import asyncio
import socket
import tomllib
from pathlib import Path

import asyncpg
import pytest
import trio

from deneva.config import Bind, Config
from deneva.db import Database, init_connection
from deneva.engine.engine import Engine
from deneva.mcp.jsonrpc import JsonObject
from deneva.mcp.tools import Tool, ToolContext, ToolError, ToolRegistry
from deneva.runtime import Daemon
from deneva.sdnotify import Notifier
from deneva.secrets import init_secrets, load_secrets
from deneva.tenants import add_tenant, create_key
from tests.conformance.suite import HERE, Suite, cache_base, install_suite, pinned_version
from tests.conftest import TEST_ENV, as_app_login

EXPECTED_FAILURES = HERE / "expected-failures.toml"
# Scenarios deneva must always pass: never allowed in the expected-failures file.
REQUIRED = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")
NO_ARGUMENTS: JsonObject = {"type": "object", "properties": {}}


def load_expected_failures() -> dict[str, str]:
    """`scenario = "reason"` pairs; every reason must say something."""
    data = tomllib.loads(EXPECTED_FAILURES.read_text())
    entries = data.get("expected-failures", {})
    assert isinstance(entries, dict), "expected-failures.toml: [expected-failures] must be a table"
    for scenario, reason in entries.items():
        assert isinstance(reason, str) and reason.strip(), f"expected-failures.toml: {scenario} has no reason"
    return {str(k): str(v) for k, v in entries.items()}


# -- the test-only tools the suite calls by name ------------------------------------------


async def _simple_text(args: JsonObject, ctx: ToolContext) -> JsonObject:
    return {"text": "This is a simple text response for testing."}


async def _error_handling(args: JsonObject, ctx: ToolContext) -> JsonObject:
    raise ToolError("This tool intentionally returns an error for testing")


async def _with_progress(args: JsonObject, ctx: ToolContext) -> JsonObject:
    for done in (0, 50, 100):
        if ctx.progress is not None:
            await ctx.progress(done, 100, None)
        if done < 100:
            await trio.sleep(0.05)
    return {"text": "Progress tool completed"}


def conformance_tools() -> list[Tool]:
    """Tools named by tools-call-simple-text, tools-call-error and tools-call-with-progress.

    deneva's tools return structured JSON (sent as structuredContent and as text), so
    the scenarios that need image, audio or resource content, logging, sampling or
    elicitation get no tool here (see expected-failures.toml).
    """
    return [
        Tool(
            "test_simple_text", "Returns simple text (conformance suite).", NO_ARGUMENTS, None, _simple_text
        ),
        Tool("test_error_handling", "Always fails (conformance suite).", NO_ARGUMENTS, None, _error_handling),
        Tool(
            "test_tool_with_progress",
            "Reports progress 0, 50, 100 of 100 (conformance suite).",
            NO_ARGUMENTS,
            None,
            _with_progress,
        ),
    ]


class ConformanceDaemon(Daemon):
    def mcp_tools(self, db: Database, engine: Engine) -> ToolRegistry:
        tools = super().mcp_tools(db, engine)
        for tool in conformance_tools():
            tools.register(tool)
        return tools


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def conformance_suite() -> Suite:
    suite = Suite(install_suite(), cache_base())
    assert suite.version() == pinned_version()
    return suite


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def provision_api_key(database_url: str, tenant: str = "conformance") -> str:
    async def go() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            await init_connection(conn)
            await add_tenant(conn, tenant)
            return (await create_key(conn, tenant, label="conformance suite")).plaintext
        finally:
            await conn.close()

    return asyncio.run(go())


# -- tests ---------------------------------------------------------------------------------


def test_expected_failures_file_is_well_formed(conformance_suite: Suite) -> None:
    expected = load_expected_failures()
    scenarios = conformance_suite.server_scenarios()
    assert set(REQUIRED) <= set(scenarios), scenarios
    assert not set(REQUIRED) & set(expected), "these scenarios must pass, never be expected failures"
    unknown = sorted(set(expected) - set(scenarios))
    assert not unknown, f"expected-failures.toml names scenarios this suite does not have: {unknown}"


async def test_official_conformance_suite(
    tmp_path: Path, database_url: str, conformance_suite: Suite
) -> None:
    expected = load_expected_failures()
    scenarios = await trio.to_thread.run_sync(conformance_suite.server_scenarios)
    api_key = await trio.to_thread.run_sync(provision_api_key, database_url)
    init_secrets(tmp_path / "secrets")
    port = _free_port()
    config = Config(
        env=TEST_ENV,
        state_dir=tmp_path / "state",
        database_url=as_app_login(database_url),
        migrate_database_url=database_url,
        http_bind=Bind("127.0.0.1", port),
        heartbeat_interval_s=5,
    )
    daemon = ConformanceDaemon(config, load_secrets(tmp_path / "secrets"), notifier=Notifier(None))
    async with trio.open_nursery() as nursery:
        with trio.fail_after(60):
            await nursery.start(daemon.run)
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            # Without the key nothing passes: what passes below passes as the tenant.
            anonymous = await trio.to_thread.run_sync(
                conformance_suite.run, url, None, tmp_path / "anonymous", "server-initialize"
            )
            run = await trio.to_thread.run_sync(
                conformance_suite.run, url, f"Bearer {api_key}", tmp_path / "out"
            )
        finally:
            daemon.request_stop()
    assert anonymous.results["server-initialize"].failed, anonymous.output
    assert "Unauthorized" in anonymous.results["server-initialize"].describe()
    results = run.results

    assert sorted(results) == sorted(scenarios), f"scenarios without a result:\n{run.output[-4000:]}"
    unexpected = [results[s] for s in scenarios if results[s].failed and s not in expected]
    now_passing = [s for s in expected if not results[s].failed]
    report = "\n".join(
        [
            *(f"unexpected failure: {r.describe()}" for r in unexpected),
            *(f"passes now, remove from expected-failures.toml: {s}" for s in now_passing),
        ]
    )
    if report:
        pytest.fail(report, pytrace=False)
    assert not [s for s in REQUIRED if results[s].failed]
