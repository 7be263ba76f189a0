"""A real daemon for end-to-end MCP tests: `deneva.runtime.Daemon` in this process on a
free loopback port and a fresh database, syncing against the sandbox ad platforms.

It is `deneva run`'s configuration, not the demo's: the platform API roots point at a
sandbox started in the test's nursery (its control API stays reachable, for faults),
the OAuth client and app secret come from secret files (no Google developer token:
Google sunset them on 9 September 2026, and the daemon needs none), and the
tenants, their API keys and their encrypted platform credentials are provisioned with
the same functions the CLI uses (`deneva tenant add`, `deneva key create`, `deneva
connect`). Each tenant has its own platform tokens and its own account ids. The cache
is warmed the way `make run` warms it (every fan-out function invoked at once), and
the fixture waits for every refresh with the engine's own `wait_for_run`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from deneva import tenants
from deneva.config import Bind, Config
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Database
from deneva.engine.engine import Engine
from deneva.engine.functions import Function
from deneva.mcp.report_tools import REPORT_TOOLS
from deneva.runtime import Daemon
from deneva.sandbox.server import SandboxServer
from deneva.sandbox.state import SandboxConfig
from deneva.sdnotify import Notifier
from deneva.secrets import init_secrets, load_secrets
from deneva.sync.cadence import CADENCES
from tests.adapters.conftest import Sandbox
from tests.conftest import TEST_ENV, as_app_login

# Values the sandbox accepts (PlatformConfig.for_sandbox), given to the daemon as secret files.
SANDBOX_SECRETS = {
    "DENEVA_GOOGLE_CLIENT_ID": "deneva-sandbox.apps.googleusercontent.com",
    "DENEVA_GOOGLE_CLIENT_SECRET": "sandbox-client-secret",
    "DENEVA_META_APP_ID": "100000000000001",
    "DENEVA_META_APP_SECRET": "sandbox-app-secret",
    "DENEVA_TIKTOK_APP_ID": "7000000000000000001",
    "DENEVA_TIKTOK_APP_SECRET": "sandbox-tiktok-secret",
}
PLATFORMS = ("google", "meta", "tiktok")
FINISHED = ("succeeded", "failed", "cancelled")
WARM_TIMEOUT_S = 60.0
# tools/list order (sorted by name)
TOOL_NAMES = tuple(sorted((*REPORT_TOOLS, "get_portfolio_overview", "refresh_report", "get_sync_status")))


def cached_reports(platform: str) -> list[tuple[str, str]]:
    """(report type, date range) pairs the fan-outs keep cached for a platform."""
    return [(c.report_type, r) for c in CADENCES if c.platform == platform for r in c.date_ranges]


def report_calls() -> list[tuple[str, str, str]]:
    """(tool, platform, date range): every report tool on every platform that offers it,
    each on a range the fan-outs keep cached."""
    calls = []
    for tool, report_type in REPORT_TOOLS.items():
        for platform in PLATFORMS:
            ranges = [r for t, r in cached_reports(platform) if t == report_type]
            if ranges:
                calls.append((tool, platform, ranges[0]))
    return calls


@attrs.frozen
class TenantSpec:
    """A tenant to provision: its name and the (platform, account id) pairs it connects."""

    name: str
    accounts: tuple[tuple[str, str], ...]


@attrs.frozen
class TenantInfo:
    name: str
    id: str
    key: str
    key_prefix: str
    accounts: tuple[tuple[str, str], ...]
    tokens: dict[str, str]  # platform -> the token its credentials hold

    def account(self, platform: str) -> str:
        """The tenant's only account on `platform`."""
        [account] = [a for p, a in self.accounts if p == platform]
        return account

    @property
    def account_ids(self) -> frozenset[str]:
        return frozenset(a for _, a in self.accounts)

    def secrets(self) -> tuple[str, ...]:
        """Everything of this tenant's that identifies it or must stay private."""
        return (
            self.id,
            self.name,
            self.key,
            f"dnv_{self.key_prefix}_",
            *self.account_ids,
            *self.tokens.values(),
        )


@attrs.frozen
class RunningDaemon:
    daemon: Daemon
    engine: Engine
    db: Database  # the test's own pool on the daemon's database (owner role)
    base: str  # http://127.0.0.1:PORT
    sandbox: Sandbox
    tenants: tuple[TenantInfo, ...]

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://", 1) + "/mcp/ws"

    def tenant(self, name: str) -> TenantInfo:
        return next(t for t in self.tenants if t.name == name)

    async def settle_refreshes(self, timeout_s: float = WARM_TIMEOUT_S) -> list[str]:
        """Wait until no refresh run is left unfinished (with the engine's `wait_for_run`, woken
        as each run finishes); the statuses of all refresh runs."""
        with trio.fail_after(timeout_s):
            while True:
                runs = await self.engine.list_runs(function_id="refresh-tenant-report", limit=10_000)
                pending = [r for r in runs if r.status not in FINISHED]
                if not pending:
                    return [r.status for r in runs]
                for run in pending:
                    await self.engine.wait_for_run(run.id, timeout_s)


def _tokens(index: int) -> dict[str, str]:
    return {
        "google": f"google-refresh-{index:02d}-{uuid.uuid4().hex}",
        "meta": f"meta-token-{index:02d}-{uuid.uuid4().hex}",
        "tiktok": f"tiktok-token-{index:02d}-{uuid.uuid4().hex}",
    }


def _plain(platform: str, token: str) -> PlainTokens:
    return PlainTokens(token, None) if platform == "google" else PlainTokens(None, token)


async def _provision(db: Database, keys: Keyring, specs: Sequence[TenantSpec]) -> list[TenantInfo]:
    out: list[TenantInfo] = []
    for index, spec in enumerate(specs):
        tokens = _tokens(index)

        async def provision(
            conn: Any, spec: TenantSpec = spec, tokens: dict[str, str] = tokens
        ) -> TenantInfo:
            tenant = await tenants.add_tenant(conn, spec.name)
            for platform, account in spec.accounts:
                await store_credential(
                    conn, keys, spec.name, platform, account, _plain(platform, tokens[platform])
                )
            key = await tenants.create_key(conn, spec.name, "e2e")
            used = {p: tokens[p] for p, _ in spec.accounts}
            return TenantInfo(spec.name, str(tenant.id), key.plaintext, key.prefix, spec.accounts, used)

        out.append(await db.transaction(provision))
    return out


async def warm(engine: Engine) -> list[uuid.UUID]:
    """`make run`'s warm-up: every fan-out now; returns the fan-out runs once they finished."""
    fan_outs = [await engine.invoke(f"sync-{c.platform}-{c.report_type}") for c in CADENCES]
    for run_id in fan_outs:
        record = await engine.wait_for_run(run_id, WARM_TIMEOUT_S)
        assert record.status == "succeeded", (record.function_id, record.status, record.last_error)
    return fan_outs


@asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    database_url: str,
    specs: Sequence[TenantSpec],
    *,
    functions: Sequence[Function] = (),
    secret_files: Mapping[str, str] | None = None,
    **config_values: Any,
) -> AsyncIterator[RunningDaemon]:
    """Sandbox, tenants, daemon (`config_values` added to its Config, `functions` to its
    registry, `secret_files` to its secrets directory); the cache warmed (every fan-out's
    refreshes finished)."""
    secrets_dir = tmp_path / "secrets"
    init_secrets(secrets_dir)
    for name, value in {**SANDBOX_SECRETS, **(secret_files or {})}.items():
        (secrets_dir / name).write_text(value + "\n")
    secrets = load_secrets(secrets_dir)
    db = await Database.open(database_url)
    try:
        infos = await _provision(db, secrets.keyring(), specs)
        async with trio.open_nursery() as nursery:
            server = SandboxServer(SandboxConfig(today=date.today()))
            base_url: str = await nursery.start(server.run)
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as control:
                sandbox = Sandbox(server, base_url, control)
                for info in infos:
                    for platform, token in info.tokens.items():
                        kind = "refresh_token" if platform == "google" else "access_token"
                        await sandbox.register(platform, **{kind: token})
                config = Config(
                    env=TEST_ENV,
                    state_dir=tmp_path / "state",
                    database_url=as_app_login(database_url),
                    migrate_database_url=database_url,
                    http_bind=Bind("127.0.0.1", 0),
                    heartbeat_interval_s=5,
                    shutdown_grace_s=2,
                    google_ads_url=f"{base_url}/google",
                    google_token_url=f"{base_url}/google/token",
                    meta_graph_url=f"{base_url}/meta",
                    tiktok_api_url=f"{base_url}/tiktok/open_api",
                    google_auth_url=f"{base_url}/google/o/oauth2/v2/auth",
                    meta_dialog_url=f"{base_url}/meta/www",
                    tiktok_auth_url=f"{base_url}/tiktok/portal/auth",
                    **config_values,
                )
                daemon = Daemon(config, secrets, notifier=Notifier(None))
                for function in functions:
                    daemon.registry.add(function)
                stopped = trio.Event()

                async def run_daemon(*, task_status: trio.TaskStatus[list[str]]) -> None:
                    try:
                        await daemon.run(task_status=task_status)
                    finally:
                        stopped.set()

                with trio.fail_after(60):
                    binds: list[str] = await nursery.start(run_daemon)
                assert daemon.engine is not None
                running = RunningDaemon(daemon, daemon.engine, db, binds[0], sandbox, tuple(infos))
                try:
                    await warm(daemon.engine)
                    statuses = await running.settle_refreshes()
                    assert statuses and set(statuses) == {"succeeded"}, statuses
                    yield running
                finally:
                    daemon.request_stop()
                    with trio.move_on_after(30):
                        await stopped.wait()
                    nursery.cancel_scope.cancel()
    finally:
        await db.close()


async def cache_rows(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT tenant_id::text AS tenant_id, platform, account_id, report_type, date_range, payload "
        "FROM metric_cache ORDER BY tenant_id, platform, account_id, report_type, date_range"
    )
    return [dict(r) for r in rows]
