"""`refresh-tenant-report` end to end (seed 000 §13): the real engine, the real sandbox
over HTTP, the real database. A revoked token exhausts at once (not retried), marks the
credential unhealthy with `token_revoked`, the cached rows stale and writes
`sync.exhausted`; restoring the token and syncing again clears all of it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from deneva import tenants
from deneva.adapters.base import Platform
from deneva.clock import SystemClock
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Database
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.functions import Backoff, Registry
from deneva.functions import register_sync
from deneva.sync.model import REFRESH_EVENT, SyncServices
from deneva.wiring import engine_circuit
from tests.adapters.conftest import ACCOUNTS, GOOGLE_REFRESH, TODAY, Sandbox
from tests.engine.conftest import running

KEYS = Keyring(os.urandom(32))


@asynccontextmanager
async def sync_engine(db: Database, adapters: dict[str, Platform]) -> AsyncIterator[Engine]:
    registry = Registry()
    services = SyncServices(db, KEYS, adapters, SystemClock(), today=lambda: TODAY)
    register_sync(registry, services, backoff=Backoff(base_s=0.01, factor=1, max_s=0.01, jitter=0))
    circuit = engine_circuit(
        db,
        registry,
        SystemClock(),
        "sync-test",
        EngineSettings(poll_s=0.05),
        drain=trio.Event(),
        schedule=False,
    )
    async with running(circuit):
        yield circuit.engine


async def _refresh(engine: Engine, tenant_id: uuid.UUID) -> Any:
    data = {
        "tenant_id": str(tenant_id),
        "platform": "google",
        "account_id": ACCOUNTS["google"],
        "report_type": "account_health",
        "date_range": "last_7_days",
    }
    result = await engine.send({"name": REFRESH_EVENT, "data": data})
    with trio.fail_after(30):
        return await engine.wait_for_run(result.run_ids[0], 30)


async def _acme_on_google(db: Database) -> uuid.UUID:
    """Tenant `acme` with the sandbox's Google account connected."""
    acme = (await db.transaction(lambda c: tenants.add_tenant(c, "acme"))).id
    await db.transaction(
        lambda c: store_credential(
            c, KEYS, "acme", "google", ACCOUNTS["google"], PlainTokens(GOOGLE_REFRESH, None)
        )
    )
    return acme


async def _log(db: Database) -> list[tuple[int, str, str | None]]:
    rows = await db.fetch("SELECT attempt, outcome, error_code FROM sync_log ORDER BY id")
    return [(r["attempt"], r["outcome"], r["error_code"]) for r in rows]


async def test_revoked_token_exhausts_marks_unhealthy_and_stale_then_recovery_clears(
    db: Database, sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    acme = await _acme_on_google(db)
    async with sync_engine(db, adapters) as engine:
        ok = await _refresh(engine, acme)
        assert ok.status == "succeeded", ok.last_error
        cached = await db.fetchrow("SELECT payload, is_stale FROM metric_cache")
        assert (
            cached is not None and cached["payload"]["report"] == "account_health" and not cached["is_stale"]
        )

        await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
        failed = await _refresh(engine, acme)
        assert failed.status == "failed" and failed.attempt == 1  # token_revoked is not retried
        credential = await db.fetchrow(
            "SELECT healthy, last_error_code, last_sync_failure_at FROM platform_credentials"
        )
        assert credential is not None
        assert credential["healthy"] is False and credential["last_error_code"] == "token_revoked"
        assert credential["last_sync_failure_at"] is not None
        assert await db.fetchval("SELECT is_stale FROM metric_cache") is True
        audit = await db.fetchrow("SELECT details FROM audit_log WHERE event_type = 'sync.exhausted'")
        assert audit is not None and audit["details"]["error_code"] == "token_revoked"

        await sandbox.token_action("restore", "google", GOOGLE_REFRESH)
        again = await _refresh(engine, acme)
        assert again.status == "succeeded"
    credential = await db.fetchrow("SELECT healthy, last_error_code FROM platform_credentials")
    assert credential is not None and credential["healthy"] is True and credential["last_error_code"] is None
    assert await db.fetchval("SELECT is_stale FROM metric_cache") is False
    assert await _log(db) == [
        (1, "success", None),
        (1, "failure_final", "token_revoked"),
        (1, "success", None),
    ]


async def test_transient_failure_is_retried_and_logged_per_attempt(
    db: Database, sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    acme = await _acme_on_google(db)
    await sandbox.faults(
        "google", {"server_error": {"next": 1, "status": 503}, "endpoints": ["searchStream"]}
    )
    async with sync_engine(db, adapters) as engine:
        record = await _refresh(engine, acme)
    assert record.status == "succeeded" and record.attempt == 2
    assert await _log(db) == [(1, "failure_retry", "transient"), (2, "success", None)]


async def test_rate_limit_retry_after_delays_the_next_attempt(
    db: Database, sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    acme = await _acme_on_google(db)
    await sandbox.faults(
        "google", {"rate_limit": {"next": 1, "retry_after_s": 2}, "endpoints": ["searchStream"]}
    )
    async with sync_engine(db, adapters) as engine:
        record = await _refresh(engine, acme)
    assert record.status == "succeeded" and record.attempt == 2
    rows = await db.fetch("SELECT outcome, error_code, created_at FROM sync_log ORDER BY id")
    assert [(r["outcome"], r["error_code"]) for r in rows] == [
        ("failure_retry", "rate_limited"),
        ("success", None),
    ]
    # The backoff here is 10 ms; only the platform's Retry-After explains the wait.
    assert (rows[1]["created_at"] - rows[0]["created_at"]).total_seconds() >= 2


async def test_the_access_token_a_fetch_obtained_is_kept_for_the_next_fetch(
    db: Database, sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    acme = await _acme_on_google(db)
    async with sync_engine(db, adapters) as engine:
        assert (await _refresh(engine, acme)).status == "succeeded"
        after_first = await sandbox.calls("google", "token")
        stored = await db.fetchrow(
            "SELECT access_token_ct, access_token_expires_at FROM platform_credentials"
        )
        assert stored is not None and stored["access_token_ct"] is not None
        assert stored["access_token_expires_at"] is not None
        assert (await _refresh(engine, acme)).status == "succeeded"
    assert after_first == 1
    assert await sandbox.calls("google", "token") == 1  # the second fetch reused it
