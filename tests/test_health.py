"""Readiness (/readyz), on the injectable clock (MockClock): the database, migrations,
actors and the engine canary's beat."""

from __future__ import annotations

import trio
import trio.testing

from deneva.canary import record_beat
from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.builtin import default_registry
from deneva.engine.engine import Engine
from deneva.health import HealthState
from deneva.supervisor import Supervisor

EPOCH = 1_700_000_000.0


async def test_readiness_reports_a_stale_heartbeat_after_ten_minutes(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    health = HealthState(Supervisor(trio.Event()), clock, "node-a", db=db, migrated=True)
    missing = await health.readiness()
    assert not missing.ready and missing.checks["heartbeat"] == "missing"

    await record_beat(db, "node-b", clock.now())  # any node's beat: the engine is one
    fresh = await health.readiness()
    assert fresh.ready, fresh.problems

    await trio.sleep(601)
    stale = await health.readiness()
    assert not stale.ready
    assert stale.checks["heartbeat"] == "stale (601 s old)"
    assert stale.problems == (
        "heartbeat: last heartbeat run 601 s ago (limit 600 s): "
        "the scheduler, dispatcher or workers are stuck",
    )


async def test_a_stale_heartbeat_names_an_engine_paused_on_purpose(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    engine = Engine(db, default_registry(), clock, "node-a")
    health = HealthState(Supervisor(trio.Event()), clock, "node-a", db=db, migrated=True, engine=engine)
    await record_beat(db, "node-a", clock.now())
    await engine.pause(None, by="test")
    await trio.sleep(700)
    stale = await health.readiness()
    assert not stale.ready
    assert "the engine is paused since" in stale.problems[0]
    assert "deneva functions resume --all" in stale.problems[0]


async def test_readiness_names_the_database_when_it_is_unreachable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    health = HealthState(Supervisor(trio.Event()), TrioClock(EPOCH), "node-a", db=None, migrated=False)
    result = await health.readiness()
    assert not result.ready
    assert result.checks["database"] == "unreachable"
    assert result.checks["migrations"] == "pending"
