"""The acceptance harness: the daemon's own registry (every sync function), the real
engine (dispatcher, optionally the cron scheduler), the real sandbox over HTTP and the
real database, all on one virtual clock (trio's MockClock via `autojump_clock`).

Nothing is mocked below HTTP: adapters speak to the sandbox on loopback, credentials
are envelope-encrypted in Postgres, every run goes through the engine's tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

import attrs
import httpx
import trio

from deneva import tenants
from deneva.adapters import PlatformConfig, adapters_for
from deneva.canary import CanaryServices
from deneva.clock import TrioClock
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Database
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.model import RunRecord
from deneva.functions import app_registry
from deneva.sandbox.server import SandboxServer
from deneva.sandbox.state import SandboxConfig
from deneva.sync.model import REFRESH_EVENT, SyncRuntime, SyncServices
from deneva.sync.tokens import TokenDeadlines
from deneva.wiring import Circuit, engine_circuit
from tests.adapters.conftest import ACCOUNTS, GOOGLE_REFRESH, META_TOKEN, TIKTOK_TOKEN, Sandbox
from tests.engine.conftest import EPOCH, running

KEYS = Keyring(os.urandom(32))
TODAY = date(2026, 1, 1)  # the reporting day: EPOCH's date
TOKENS = {"google": GOOGLE_REFRESH, "meta": META_TOKEN, "tiktok": TIKTOK_TOKEN}
FINISHED = ("succeeded", "failed", "cancelled")


def plain_tokens(platform: str, expires_at: float | None = None, access: str | None = None) -> PlainTokens:
    if platform == "google":
        return PlainTokens(GOOGLE_REFRESH, access, expires_at)
    return PlainTokens(None, access or TOKENS[platform], expires_at)


@attrs.define
class World:
    db: Database
    engine: Engine
    sandbox: Sandbox
    clock: TrioClock
    runtime: SyncRuntime
    keys: Keyring
    circuit: Circuit

    async def tenant(self, name: str) -> uuid.UUID:
        return (await self.db.transaction(lambda c: tenants.add_tenant(c, name))).id

    async def connect(
        self,
        tenant: str,
        platform: str,
        account: str | None = None,
        *,
        expires_at: float | None = None,
        access: str | None = None,
    ) -> None:
        tokens = plain_tokens(platform, expires_at, access)
        account_id = account or ACCOUNTS[platform]
        await self.db.transaction(
            lambda c: store_credential(c, self.keys, tenant, platform, account_id, tokens)
        )

    async def send_refresh(
        self,
        tenant_id: uuid.UUID | str,
        platform: str = "google",
        report_type: str = "account_health",
        date_range: str = "last_7_days",
        account: str | None = None,
        **extra: Any,
    ) -> uuid.UUID:
        data: dict[str, Any] = {
            "tenant_id": str(tenant_id),
            "platform": platform,
            "account_id": account or ACCOUNTS.get(platform, "1"),
            "report_type": report_type,
            "date_range": date_range,
        }
        data.update(extra)
        result = await self.engine.send({"name": REFRESH_EVENT, "data": data})
        assert len(result.run_ids) == 1, result
        run_id: uuid.UUID = result.run_ids[0]
        return run_id

    async def refresh(self, tenant_id: uuid.UUID | str, *args: Any, **kwargs: Any) -> RunRecord:
        """One refresh request, waited for to its end (retries included, in virtual time)."""
        run_id = await self.send_refresh(tenant_id, *args, **kwargs)
        return await self.wait(run_id)

    async def wait(self, run_id: uuid.UUID, timeout_s: float = 6 * 3600) -> RunRecord:
        record = await self.engine.wait_for_run(run_id, timeout_s)
        assert record.status in FINISHED, f"run {run_id} still {record.status} after {timeout_s} s"
        return record

    async def settle(self, timeout_s: float = 6 * 3600) -> None:
        """Wait (in virtual time) until no run is left to do."""
        with trio.fail_after(timeout_s):
            while await self.db.fetchval(
                "SELECT count(*) FROM engine_runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')"
            ):
                await trio.sleep(1)

    async def sync_log(self, *columns: str) -> list[tuple[Any, ...]]:
        names = ", ".join(columns or ("attempt", "outcome", "error_code"))
        rows = await self.db.fetch(f"SELECT {names} FROM sync_log ORDER BY id")
        return [tuple(r) for r in rows]


@asynccontextmanager
async def world(
    db: Database,
    *,
    scheduler: bool = False,
    token_refresh: bool = False,
    keys: Keyring = KEYS,
    services_keys: Keyring | None = None,
    platforms: tuple[str, ...] = ("google", "meta", "tiktok"),
    owner: str = "acceptance",
) -> AsyncIterator[World]:
    """The daemon's sync, minus HTTP: call inside a test that uses `autojump_clock`.

    `scheduler`: the cron scheduler runs too; `token_refresh`: the token-refresh actor.
    `services_keys` are the KEKs the running daemon has (a wrong one, to test that);
    `platforms` the platforms it syncs (has adapters for).
    """
    clock = TrioClock(EPOCH - trio.current_time())
    functions = app_registry()
    registry, runtime = functions.registry, functions.sync
    functions.canary.value = CanaryServices(db, clock, owner)  # its cron runs when the scheduler does
    async with trio.open_nursery() as nursery:
        server = SandboxServer(SandboxConfig(today=TODAY, clock=clock.now))
        base_url: str = await nursery.start(server.run)
        config = PlatformConfig.for_sandbox(base_url, clock=clock.now)
        adapters = {name: a for name, a in adapters_for(config).items() if name in platforms}
        runtime.services = SyncServices(
            db, services_keys or keys, adapters, clock, today=lambda: TODAY, owner=owner
        )
        tokens = TokenDeadlines(lambda: db, lambda: tuple(adapters)) if token_refresh else None
        circuit = engine_circuit(
            db,
            registry,
            clock,
            owner,
            EngineSettings(poll_s=30, lease_s=60),
            drain=trio.Event(),
            schedule=scheduler,
            tokens=tokens,
        )
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as control:
            box = Sandbox(server, base_url, control)
            await box.register("google", refresh_token=GOOGLE_REFRESH)
            await box.register("meta", access_token=META_TOKEN)
            await box.register("tiktok", access_token=TIKTOK_TOKEN)
            async with running(circuit):
                yield World(db, circuit.engine, box, clock, runtime, keys, circuit)
        nursery.cancel_scope.cancel()
