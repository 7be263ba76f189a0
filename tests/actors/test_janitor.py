"""The janitor (seed 000 §E, §13 steps 9-10; SPEC §11): its actor fires the retention
passes on their schedules, each pass is an engine run that deletes in bounded batches
and writes its audit event. Real circuit, real database, virtual time."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import attrs
import trio
import trio.testing

from deneva import tenants
from deneva.clock import TrioClock, as_datetime
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.engine import EngineSettings
from deneva.engine.functions import Registry
from deneva.functions import Bound
from deneva.retention import (
    ARCHIVE_AUDIT,
    PRUNE_ENGINE,
    PRUNE_OAUTH,
    PURGE_CACHE,
    PURGE_SYNC_LOG,
    JanitorPlan,
    JanitorServices,
    Retention,
    register_retention,
)
from deneva.wiring import Circuit, engine_circuit
from tests.engine.conftest import EPOCH, running

DAY = 86_400.0
# 2026-01-01T01:59:00Z: the nightly passes are a minute away.
START = EPOCH + 2 * 3600 - 60


@asynccontextmanager
async def janitor_circuit(
    db: Database, plan: JanitorPlan | None = None, epoch: float | None = None
) -> AsyncIterator[Circuit]:
    """`epoch`: the wall time at trio time 0 (default: START now)."""
    clock = TrioClock(START - trio.current_time() if epoch is None else epoch)
    registry = register_builtin(Registry())
    services: Bound[JanitorServices] = Bound("janitor")
    register_retention(registry, services.get)
    plan = plan or JanitorPlan()
    circuit = engine_circuit(
        db,
        registry,
        clock,
        "janitor-test",
        EngineSettings(poll_s=30, lease_s=60),
        drain=trio.Event(),
        janitor=plan,
    )
    services.value = JanitorServices(db, circuit.engine, clock, plan)
    async with running(circuit):
        yield circuit


async def _tenant(db: Database) -> uuid.UUID:
    return (await db.transaction(lambda c: tenants.add_tenant(c, "acme"))).id


async def _cache_row(db: Database, tenant: uuid.UUID, report: str, fetched: float, expires: float) -> None:
    await db.execute(
        "INSERT INTO metric_cache (tenant_id, platform, account_id, report_type, date_range, payload, "
        "fetched_at, expires_at, refresh_at) VALUES ($1, 'google', '1234567890', $2, 'last_7_days', '{}', "
        "$3, $4, $4)",
        tenant,
        report,
        as_datetime(fetched),
        as_datetime(expires),
    )


async def _pass(db: Database, function_id: str) -> dict[str, object]:
    """The finished run of a janitor pass (waiting for it in virtual time)."""
    with trio.fail_after(3 * 3600):
        while True:
            row = await db.fetchrow(
                "SELECT status, output, last_error FROM engine_runs WHERE function_id = $1 "
                "ORDER BY created_at DESC LIMIT 1",
                function_id,
            )
            if row is not None and row["status"] in ("succeeded", "failed"):
                assert row["status"] == "succeeded", row["last_error"]
                output: dict[str, object] = row["output"]
                return output
            await trio.sleep(30)


async def test_nightly_cache_purge_and_audit_archive_with_their_audit_events(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    acme = await _tenant(db)
    now = START
    # Seed §13 step 9: a row expired (a day and more ago: past the grace), one older than 90 d,
    # and a fresh one that stays.
    await _cache_row(db, acme, "account_health", now - 3 * DAY, now - 2 * DAY)
    await _cache_row(db, acme, "budget_optimizer", now - 91 * DAY, now + 3600)
    await _cache_row(db, acme, "weekly_anomaly", now - 600, now + 3000)
    # Expired an hour ago: still inside the grace period, served as stale.
    await _cache_row(db, acme, "search_term_waste", now - 7200, now - 3600)
    # Seed §13 step 10: a synthetic 13-month-old audit row, and a recent one.
    for age_days in (395, 10):
        await db.execute(
            "INSERT INTO audit_log (event_type, outcome, created_at) VALUES ('test', 'success', $1)",
            as_datetime(now - age_days * DAY),
        )
    await db.execute(
        "INSERT INTO sync_log (tenant_id, platform, account_id, report_type, date_range, attempt, outcome, "
        "duration_ms, created_at) VALUES "
        "($1, 'google', '1', 'account_health', 'last_7_days', 1, 'success', 5, $2),"
        "($1, 'google', '1', 'account_health', 'last_7_days', 1, 'success', 5, $3)",
        acme,
        as_datetime(now - 31 * DAY),
        as_datetime(now - 29 * DAY),
    )
    # Browser connect flows: one that expired two days ago goes, one that expired an hour
    # ago (its outcome may still be read by a waiting `deneva connect`) and a live one stay.
    for name, expired_s in (("old", 2 * DAY), ("recent", 3600), ("live", -300)):
        await db.execute(
            "INSERT INTO connect_flows (state_hash, tenant_id, platform, operator, created_at, expires_at, "
            "updated_at) VALUES (sha256($1::bytea), $2, 'meta', 'ops', $3, $4, $4)",
            name.encode(),
            acme,
            as_datetime(now - expired_s - 600),
            as_datetime(now - expired_s),
        )
    audit_total = await db.fetchval("SELECT count(*) FROM audit_log") + await db.fetchval(
        "SELECT count(*) FROM audit_log_archive"
    )

    async with janitor_circuit(db):
        purged = await _pass(db, PURGE_CACHE)  # 02:00
        synced = await _pass(db, PURGE_SYNC_LOG)  # 02:15
        archived = await _pass(db, ARCHIVE_AUDIT)  # 02:30

    assert purged == {"deleted": 2, "expired": 1, "old": 1}
    left = {r["report_type"] for r in await db.fetch("SELECT report_type FROM metric_cache")}
    assert left == {"weekly_anomaly", "search_term_waste"}
    assert synced == {"deleted": 1, "connect_flows": 1}
    assert await db.fetchval("SELECT count(*) FROM sync_log") == 1
    assert await db.fetchval("SELECT count(*) FROM connect_flows") == 2
    assert archived == {"moved": 1}
    assert await db.fetchval("SELECT count(*) FROM audit_log_archive WHERE event_type = 'test'") == 1
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE event_type = 'test'") == 1
    events = {
        r["event_type"]: r["details"]
        for r in await db.fetch(
            "SELECT event_type, details FROM audit_log WHERE actor = 'janitor' AND event_type LIKE 'gdpr.%'"
        )
    }
    assert events == {
        "gdpr.purge_cache": {"deleted": 2, "expired": 1, "old": 1},
        "gdpr.purge_sync_log": {"deleted": 1, "connect_flows": 1},
        "gdpr.archive_audit": {"moved": 1},
    }
    # Row count preserved: every audit row is in one of the two tables (plus the passes' events).
    total = await db.fetchval("SELECT count(*) FROM audit_log") + await db.fetchval(
        "SELECT count(*) FROM audit_log_archive"
    )
    assert total == audit_total + await db.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'janitor'")


async def test_engine_pruning_keeps_recent_and_unfinished_runs_in_bounded_batches(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    now = START

    async def runs(status: str, finished_days_ago: float | None, n: int) -> None:
        finished = None if finished_days_ago is None else as_datetime(now - finished_days_ago * DAY)
        await db.execute(
            "INSERT INTO engine_runs (id, function_id, status, event, max_attempts, run_at, created_at, "
            "finished_at) SELECT gen_random_uuid(), 'deneva-noop', $1, '{}', 1, $2, $3, $4 "
            "FROM generate_series(1, $5)",
            status,
            as_datetime(now + 10 * DAY),  # an unfinished one is not due while the test runs
            as_datetime(now - 40 * DAY),
            finished,
            n,
        )
        await db.execute(
            "INSERT INTO engine_steps (run_id, step_id, output, completed_at) "
            "SELECT id, 'echo', '{}', created_at FROM engine_runs r "
            "WHERE status = $1 AND NOT EXISTS (SELECT 1 FROM engine_steps s WHERE s.run_id = r.id)",
            status,
        )

    await runs("succeeded", 8, 25)  # past the 7 d retention
    await runs("succeeded", 6, 3)
    await runs("failed", 8, 4)  # failed runs are kept 30 d
    await runs("failed", 31, 2)
    await runs("cancelled", 31, 1)
    await runs("sleeping", None, 2)  # never pruned, however old
    await db.execute(
        "INSERT INTO engine_events (id, name, data, ts, received_at) "
        "SELECT 'old-' || i, 'x/y', '{}', $1, $1 FROM generate_series(1, 12) AS i",
        as_datetime(now - 8 * DAY),
    )
    await db.execute(
        "INSERT INTO engine_idempotency (key, run_id, expires_at) VALUES ('k1', gen_random_uuid(), $1), "
        "('k2', gen_random_uuid(), $2)",
        as_datetime(now - 1),
        as_datetime(now + DAY),
    )
    for days in (9, 8, 1):  # the latest tick of a function stays, however old it is
        await db.execute(
            "INSERT INTO engine_cron_ticks (function_id, tick_at) VALUES ('f', $1), ('g', $2)",
            as_datetime(now - days * DAY),
            as_datetime(now - (days + 30) * DAY),
        )
    await db.execute(
        "INSERT INTO engine_rate_windows (key, window_start, count) VALUES ('r', $1, 1), ('r', $2, 1)",
        as_datetime(now - 3 * DAY),
        as_datetime(now - 60),
    )
    # Inbound webhook deliveries are remembered 7 days (their senders' retries are over).
    await db.execute(
        "INSERT INTO webhook_deliveries (source, id, received_at) "
        "SELECT 'webhooks/events', 'msg_' || i, $1::timestamptz FROM generate_series(1, 13) AS i "
        "UNION ALL SELECT 'meta', 'recent-' || i, $2::timestamptz FROM generate_series(1, 2) AS i",
        as_datetime(now - 8 * DAY),
        as_datetime(now - 6 * DAY),
    )
    # Batches of 10 rows: every table takes several statements.
    plan = JanitorPlan(schedules={PRUNE_ENGINE: "0 2 * * *"}, retention=attrs.evolve(Retention(), batch=10))
    async with janitor_circuit(db, plan):
        pruned = await _pass(db, PRUNE_ENGINE)

    assert pruned == {
        "runs": {"succeeded": 25, "failed": 2, "cancelled": 1},
        "steps": 28,  # one per pruned run
        "events": 12,
        "idempotency_keys": 1,
        "cron_ticks": 4,
        "rate_windows": 1,
        "webhook_deliveries": 13,
    }
    assert await db.fetchval("SELECT array_agg(id ORDER BY id) FROM webhook_deliveries") == [
        "recent-1",
        "recent-2",
    ]
    left = await db.fetch(
        "SELECT status, count(*) AS n FROM engine_runs WHERE function_id = 'deneva-noop' GROUP BY 1"
    )
    assert {r["status"]: r["n"] for r in left} == {"succeeded": 3, "failed": 4, "sleeping": 2}
    assert await db.fetchval("SELECT count(*) FROM engine_steps") == 3 + 4 + 2
    ticks = await db.fetch(
        "SELECT function_id, tick_at FROM engine_cron_ticks WHERE function_id IN ('f', 'g') ORDER BY 1, 2"
    )
    assert [(r["function_id"], r["tick_at"]) for r in ticks] == [
        ("f", as_datetime(now - DAY)),
        ("g", as_datetime(now - 31 * DAY)),
    ]
    event = await db.fetchval("SELECT details FROM audit_log WHERE event_type = 'janitor.prune_engine'")
    assert event == pruned


async def test_a_missed_nightly_pass_runs_once_when_the_daemon_comes_back(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    plan = JanitorPlan(schedules={PURGE_SYNC_LOG: "15 2 * * *"})
    epoch = START - trio.current_time()
    async with janitor_circuit(db, plan, epoch) as circuit:
        await _pass(db, PURGE_SYNC_LOG)
        count = "SELECT count(*) FROM engine_runs WHERE function_id = $1"
        assert await db.fetchval(count, PURGE_SYNC_LOG) == 1
        clock = circuit.engine.clock
    # Three nights pass with no janitor running; then one starts.
    await trio.sleep(3 * DAY + 4 * 3600 - (clock.now() - START))
    async with janitor_circuit(db, plan, epoch):
        await trio.sleep(60)
        runs = await db.fetch(
            "SELECT event FROM engine_runs WHERE function_id = $1 ORDER BY created_at", PURGE_SYNC_LOG
        )
    assert len(runs) == 2  # the latest missed pass only
    ticks = [r["event"]["data"]["tick"] for r in runs]
    day = timedelta(days=3)
    assert ticks[1] == (as_datetime(START + 16 * 60) + day).isoformat()


async def test_oauth_codes_and_tokens_are_pruned_a_week_after_they_expire_and_console_sessions_once_expired(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    from deneva.oauth import store
    from deneva.oauth.model import Client

    acme = await _tenant(db)
    now = START
    redirect = "http://127.0.0.1/cb"

    async def seed(conn: object) -> uuid.UUID:
        client = Client(
            "dnv_client_janitor", "dcr", "c", (redirect,), "none", None, {"redirect_uris": [redirect]}
        )
        await store.save_client(conn, client)  # type: ignore[arg-type]
        grant = await store.insert_grant(
            conn, acme, client.client_id, "reports:read", "https://x/mcp", "test"
        )  # type: ignore[arg-type]
        # Expired 8 days ago (pruned), 6 days ago (kept a little longer), not yet (kept).
        for i, expires in enumerate((now - 8 * DAY, now - 6 * DAY, now + 3600)):
            await store.insert_token(conn, f"t{i}", "refresh", b"h" * 32, grant, expires)  # type: ignore[arg-type]
            await store.insert_code(conn, f"c{i}", b"h" * 32, grant, redirect, "x" * 43, expires)  # type: ignore[arg-type]
            await store.insert_connect_code(conn, bytes([i]) * 32, acme, expires)  # type: ignore[arg-type]
        # Console sessions: one that ended a minute ago (pruned), one still open (kept).
        for i, expires in enumerate((now - 60, now + 3600)):
            await conn.execute(  # type: ignore[attr-defined]
                "INSERT INTO admin_sessions (secret_hash, role, created_at, last_seen_at, expires_at) "
                "VALUES ($1, 'admin', $2, $2, $3)",
                bytes([i]) * 32,
                as_datetime(now - 7200),
                as_datetime(expires),
            )
        return grant

    grant = await db.transaction(seed)
    async with janitor_circuit(db, JanitorPlan(schedules={PRUNE_OAUTH: "45 2 * * *"})):
        pruned = await _pass(db, PRUNE_OAUTH)
    assert pruned == {"oauth_tokens": 1, "oauth_codes": 1, "oauth_connect_codes": 1, "admin_sessions": 1}
    assert (
        await db.fetchval("SELECT count(*) FROM admin_sessions WHERE expires_at > $1", as_datetime(now)) == 1
    )
    assert [r["id"] for r in await db.fetch("SELECT id FROM oauth_tokens ORDER BY id")] == ["t1", "t2"]
    assert [r["id"] for r in await db.fetch("SELECT id FROM oauth_codes ORDER BY id")] == ["c1", "c2"]
    assert await db.fetchval("SELECT count(*) FROM oauth_connect_codes") == 2
    assert await db.fetchval("SELECT count(*) FROM oauth_grants WHERE id = $1", grant) == 1  # grants stay
    details = await db.fetchval("SELECT details FROM audit_log WHERE event_type = 'janitor.prune_oauth'")
    assert details == pruned
