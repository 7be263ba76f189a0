"""Admin endpoints (SPEC §10; seed 000 §F3, §G4): the x-admin-token, the scheduler's
dead-canary, sync metrics per (tenant, platform, report) with credential health."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any, cast

import pytest
import trio
import trio.testing

from deneva import tenants
from deneva.adapters import PlatformConfig, adapters_for
from deneva.canary import record_beat
from deneva.clock import TrioClock, as_datetime
from deneva.credentials import PlainTokens, store_credential
from deneva.db import Database
from deneva.health import HealthState
from deneva.http.admin import parse_since_hours
from deneva.http.app import create_app
from deneva.secrets import Secret
from deneva.supervisor import Supervisor
from deneva.sync.versions import api_versions
from tests.sync.harness import KEYS, world
from tests.sync.test_versions import at

TOKEN = "admin-token-0123456789abcdef"
EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z
AUTH = {"x-admin-token": TOKEN}


class FixedClock:
    def __init__(self, now: float = EPOCH) -> None:
        self.at = now

    def now(self) -> float:
        return self.at

    async def sleep_until(self, when: float) -> None:
        self.at = max(self.at, when)


class CountingDb:
    """The database, counting the crossings made through it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.crossings = 0

    def __getattr__(self, name: str) -> Any:
        self.crossings += 1
        return getattr(self.db, name)


def _client(db: Database | None, clock: Any, **kwargs: Any) -> Any:
    health = HealthState(Supervisor(trio.Event()), clock, "node-a", db=db, migrated=True)
    app = create_app(health, admin_token=Secret("DENEVA_ADMIN_TOKEN", TOKEN), **kwargs)
    return app.test_client()


async def _tenant(db: Database, name: str) -> uuid.UUID:
    return (await db.transaction(lambda c: tenants.add_tenant(c, name))).id


async def _log(
    db: Database,
    tenant: uuid.UUID,
    platform: str,
    report: str,
    outcome: str,
    ms: int,
    at: float,
    code: str | None = None,
) -> None:
    await db.execute(
        "INSERT INTO sync_log (tenant_id, platform, account_id, report_type, date_range, attempt, outcome, "
        "duration_ms, error_code, created_at) VALUES ($1, $2, 'a1', $3, 'last_7_days', 1, $4, $5, $6, $7)",
        tenant,
        platform,
        report,
        outcome,
        ms,
        code,
        as_datetime(at),
    )


async def test_a_missing_or_wrong_token_is_401_and_never_echoed(db: Database) -> None:
    client = _client(db, FixedClock())
    for path in ("/admin/health/scheduler", "/admin/metrics/sync", "/admin/metrics/sync?sinceHours=oops"):
        for headers in (
            {},
            {"x-admin-token": "wrong"},
            {"x-admin-token": TOKEN[:-1]},
            {"Authorization": TOKEN},
        ):
            response = await client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            body = await response.get_data(as_text=True)
            assert "x-admin-token" in body and TOKEN not in body


async def test_without_an_admin_token_the_routes_do_not_exist(db: Database) -> None:
    health = HealthState(Supervisor(trio.Event()), FixedClock(), "node-a", db=db, migrated=True)
    client = create_app(health).test_client()
    assert (await client.get("/admin/health/scheduler", headers=AUTH)).status_code == 404


async def test_scheduler_health_follows_the_latest_heartbeat(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    client = _client(db, clock)
    never = await client.get("/admin/health/scheduler", headers=AUTH)
    assert never.status_code == 503
    assert await never.get_json() == {"alive": False, "lastBeatAt": None, "ageMs": None, "node": None}

    await record_beat(db, "node-a", clock.now())
    await trio.sleep(5)
    fresh = await client.get("/admin/health/scheduler", headers=AUTH)
    assert fresh.status_code == 200
    assert await fresh.get_json() == {
        "alive": True,
        "lastBeatAt": "2026-01-01T00:00:00+00:00",
        "ageMs": 5000,
        "node": "node-a",
    }

    await trio.sleep(6 * 60)  # another node beats later: the latest beat counts
    await record_beat(db, "node-b", clock.now())
    later = await (await client.get("/admin/health/scheduler", headers=AUTH)).get_json()
    assert later["node"] == "node-b" and later["ageMs"] == 0

    # Seed 000 §G4: a last beat 11 minutes ago is a dead scheduler.
    await db.execute("UPDATE heartbeats SET last_beat_at = $1", as_datetime(clock.now() - 11 * 60))
    stale = await client.get("/admin/health/scheduler", headers=AUTH)
    assert stale.status_code == 503
    body = await stale.get_json()
    assert body["alive"] is False and body["ageMs"] == 11 * 60 * 1000


async def test_sync_metrics_group_by_tenant_platform_report_over_the_window(db: Database) -> None:
    acme, globex = await _tenant(db, "acme"), await _tenant(db, "globex")
    now = EPOCH
    # Seed 000 §F3: three successes and one failure.
    for ms in (100, 200, 301):
        await _log(db, acme, "google", "account_health", "success", ms, now - 600)
    await _log(db, acme, "google", "account_health", "failure_retry", 50, now - 500, "transient")
    await _log(db, acme, "google", "account_health", "failure_final", 60, now - 400, "transient")
    await _log(db, acme, "meta", "account_health", "failure_final", 70, now - 2 * 3600, "token_revoked")
    await _log(db, globex, "google", "budget_optimizer", "success", 40, now - 30 * 3600)
    await _log(
        db, globex, "google", "budget_optimizer", "success", 10, now - 200 * 3600
    )  # out of every window
    await db.transaction(
        lambda c: store_credential(c, KEYS, "acme", "google", "1234567890", PlainTokens("refresh", None))
    )
    await db.execute(
        "UPDATE platform_credentials SET healthy = false, last_error_code = 'transient', "
        "last_sync_failure_at = $1, last_success_at = $2",
        as_datetime(now - 400),
        as_datetime(now - 600),
    )
    client = _client(db, FixedClock(now))

    day = await client.get("/admin/metrics/sync", headers=AUTH)
    assert day.status_code == 200
    body = await day.get_json()
    assert body["window"] == {"sinceHours": 24, "since": "2025-12-31T00:00:00+00:00"}
    assert body["syncs"] == [
        {
            "tenantId": str(acme),
            "tenant": "acme",
            "platform": "google",
            "reportType": "account_health",
            "successes": 3,
            "retries": 1,
            "finals": 1,
            "avgDurationMs": 200,  # of the successes
        },
        {
            "tenantId": str(acme),
            "tenant": "acme",
            "platform": "meta",
            "reportType": "account_health",
            "successes": 0,
            "retries": 0,
            "finals": 1,
            "avgDurationMs": 0,
        },
    ]
    assert body["credentials"] == [
        {
            "tenantId": str(acme),
            "tenant": "acme",
            "platform": "google",
            "accountId": "1234567890",
            "healthy": False,
            "status": "unhealthy",
            "reconnect": None,
            "lastErrorCode": "transient",
            "lastSyncFailureAt": "2025-12-31T23:53:20+00:00",
            "lastSuccessAt": "2025-12-31T23:50:00+00:00",
        }
    ]

    hour = await (await client.get("/admin/metrics/sync?sinceHours=1", headers=AUTH)).get_json()
    assert [(s["platform"], s["successes"]) for s in hour["syncs"]] == [("google", 3)]
    week = await (await client.get("/admin/metrics/sync?sinceHours=168", headers=AUTH)).get_json()
    assert [(s["tenant"], s["reportType"], s["successes"]) for s in week["syncs"]] == [
        ("acme", "account_health", 3),
        ("acme", "account_health", 0),
        ("globex", "budget_optimizer", 1),
    ]


async def test_sync_metrics_show_the_api_versions_as_they_stand_today(db: Database) -> None:
    bare = await (await _client(db, FixedClock(EPOCH)).get("/admin/metrics/sync", headers=AUTH)).get_json()
    assert bare["apiVersions"] == {}  # a daemon that syncs nothing
    meta = adapters_for(PlatformConfig(meta_api_version="v25.0"))["meta"]
    for now, status, days_left in ((EPOCH, "current", 418), (at(date(2027, 1, 24)), "sunsetting", 30)):
        clock = FixedClock(now)
        client = _client(db, clock, api_versions=lambda c=clock: api_versions({"meta": meta}, c.now()))
        body = await (await client.get("/admin/metrics/sync", headers=AUTH)).get_json()
        assert body["apiVersions"] == {
            "meta": {
                "version": "v25.0",
                "sunset": "2027-02-23",
                "sunsetProjected": False,
                "daysLeft": days_left,
                "status": status,
                "replacement": None if status == "current" else "v27.0",
            }
        }


@pytest.mark.parametrize("value", ["0", "169", "-1", "1.5", "abc", "", "24h", "١٢", "9" * 40])
async def test_a_bad_since_hours_is_400_naming_it(db: Database, value: str) -> None:
    client = _client(db, FixedClock())
    response = await client.get("/admin/metrics/sync", query_string={"sinceHours": value}, headers=AUTH)
    assert response.status_code == 400
    error = (await response.get_json())["error"]
    assert error.startswith("sinceHours: expected a whole number of hours from 1 to 168")
    assert len(error) < 160


def test_since_hours_parsing() -> None:
    assert parse_since_hours(None) == 24
    assert parse_since_hours("1") == 1 and parse_since_hours(" 168 ") == 168 and parse_since_hours("07") == 7


async def test_one_database_crossing_per_request_and_503_without_a_database(db: Database) -> None:
    counting = CountingDb(db)
    client = _client(db, FixedClock(), db_of=lambda: cast(Database, counting))
    assert (await client.get("/admin/metrics/sync", headers=AUTH)).status_code == 200
    assert counting.crossings == 1
    assert (await client.get("/admin/health/scheduler", headers=AUTH)).status_code == 503
    assert counting.crossings == 2

    offline = _client(None, FixedClock())
    for path in ("/admin/metrics/sync", "/admin/health/scheduler"):
        response = await offline.get(path, headers=AUTH)
        assert response.status_code == 503
        assert (await response.get_json())["error"] == "the database is unavailable; retry later"


async def test_metrics_reflect_real_syncs_and_an_exhausted_credential(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """Seed 000 §F3 against the running sync: the counts, the durations, and the
    credentials array showing the unhealthy state set by an exhausted refresh."""
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google")
        for date_range in ("last_7_days", "last_30_days", "last_90_days"):
            assert (await w.refresh(acme, date_range=date_range)).status == "succeeded"
        await w.sandbox.faults(
            "google", {"server_error": {"probability": 1.0}, "endpoints": ["searchStream"]}
        )
        assert (await w.refresh(acme, report_type="budget_optimizer")).status == "failed"
        client = _client(db, w.clock)
        body = await (await client.get("/admin/metrics/sync?sinceHours=1", headers=AUTH)).get_json()

    by_report = {s["reportType"]: s for s in body["syncs"]}
    assert (by_report["account_health"]["successes"], by_report["account_health"]["finals"]) == (3, 0)
    assert by_report["account_health"]["avgDurationMs"] > 0
    budget = by_report["budget_optimizer"]
    assert (budget["successes"], budget["retries"], budget["finals"]) == (0, 3, 1)
    [credential] = body["credentials"]
    assert credential["healthy"] is False and credential["lastErrorCode"] == "transient"
    assert credential["lastSyncFailureAt"] is not None and credential["lastSuccessAt"] is not None
    failed_at = as_datetime(w.clock.now()) - timedelta(hours=1)
    assert credential["lastSyncFailureAt"] > failed_at.isoformat()
