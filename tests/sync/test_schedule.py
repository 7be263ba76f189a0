"""Keeping the cache warm: due rows are refreshed once per fetched version, reports
never fetched are fanned out per cadence, revoked credentials are left alone."""

from __future__ import annotations

import os
import uuid

import trio
import trio.testing

from deneva import tenants
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.functions import EventTrigger, Function, Registry
from deneva.sync.cache import CacheKey, write
from deneva.sync.cadence import CADENCES, cadence_for
from deneva.sync.schedule import due_refreshes, missing_reports, register_schedules
from deneva.sync.worker import REFRESH_EVENT
from tests.engine.conftest import EPOCH, running_engine

KEYS = Keyring(os.urandom(32))


async def _connected(
    db: Database, name: str, platform: str = "google", account: str = "1234567890"
) -> uuid.UUID:
    tenant = await db.transaction(lambda c: tenants.add_tenant(c, name))
    token = PlainTokens("refresh-1", None) if platform == "google" else PlainTokens(None, "access-1")
    await db.transaction(lambda c: store_credential(c, KEYS, name, platform, account, token))
    return tenant.id


def test_every_cadence_has_a_fan_out_function(database_url: str) -> None:
    registry = Registry()
    register_schedules(registry, lambda: None)  # type: ignore[arg-type, return-value]
    ids = {f.id for f in registry.all()}
    assert "eager-cache-refresh" in ids
    assert {f"sync-{c.platform}-{c.report_type}" for c in CADENCES} <= ids


async def test_due_rows_are_refreshed_once_per_fetched_version(db: Database) -> None:
    acme = await _connected(db, "acme")
    key = CacheKey(acme, "google", "1234567890", "account_health", "last_7_days")
    await write(db, key, {"x": 1}, EPOCH, 3600)
    assert await db.run(lambda c: due_refreshes(c, EPOCH + 0.79 * 3600)) == ([], {})
    due, skipped = await db.run(lambda c: due_refreshes(c, EPOCH + 0.91 * 3600))
    assert len(due) == 1 and due[0]["data"]["report_type"] == "account_health" and skipped == {}
    again, _ = await db.run(lambda c: due_refreshes(c, EPOCH + 0.95 * 3600))
    assert again[0]["id"] == due[0]["id"]  # same version: a replica sending it too is a no-op
    await db.execute("UPDATE platform_credentials SET last_error_code = 'token_revoked', healthy = false")
    # Left alone until reconnected, and counted as skipped, with why.
    assert await db.run(lambda c: due_refreshes(c, EPOCH + 0.95 * 3600)) == ([], {"revoked": 1})
    await db.execute("UPDATE platform_credentials SET last_error_code = 'credential_unreadable'")
    assert await db.run(lambda c: due_refreshes(c, EPOCH + 0.95 * 3600)) == ([], {"unhealthy": 1})


async def test_reports_never_fetched_are_fanned_out(db: Database) -> None:
    acme = await _connected(db, "acme")
    cadence = cadence_for("google", "account_health")
    assert cadence is not None
    missing, skipped = await db.run(lambda c: missing_reports(c, cadence, 1000))
    assert sorted(e["data"]["date_range"] for e in missing) == sorted(cadence.date_ranges) and skipped == {}
    await write(db, CacheKey(acme, "google", "1234567890", "account_health", "last_7_days"), {}, EPOCH, 3600)
    missing, _ = await db.run(lambda c: missing_reports(c, cadence, 1000))
    assert sorted(e["data"]["date_range"] for e in missing) == ["last_30_days", "last_90_days"]
    await db.execute("UPDATE platform_credentials SET last_error_code = 'token_revoked', healthy = false")
    assert await db.run(lambda c: missing_reports(c, cadence, 1000)) == ([], {"revoked": 2})


async def test_fan_out_cron_sends_refresh_events(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    await _connected(db, "acme", "tiktok", "7000000000000000001")
    registry = Registry()
    register_schedules(registry, lambda: db)
    seen: list[dict[str, str]] = []

    async def record(ctx: Context) -> None:
        seen.append(ctx.data)

    registry.add(Function("recorder", record, (EventTrigger(REFRESH_EVENT),)))
    async with running_engine(db, registry):
        await trio.sleep(11 * 60)
    tiktok = [c for c in CADENCES if c.platform == "tiktok"]
    expected = sum(len(c.date_ranges) for c in tiktok)
    assert len(seen) == expected  # one 10-minute tick (the first was at 00:10)
    assert {d["report_type"] for d in seen} == {c.report_type for c in tiktok}
