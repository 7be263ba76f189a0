"""The heartbeat actor and readiness, on the injectable clock (MockClock)."""

from __future__ import annotations

import trio
import trio.testing

from deneva.actors.heartbeat import Heartbeat
from deneva.clock import TrioClock
from deneva.db import Database
from deneva.health import HealthState
from deneva.supervisor import Supervisor

EPOCH = 1_700_000_000.0


async def _beat_times(db: Database) -> list[float]:
    rows = await db.fetch("SELECT last_beat_at FROM heartbeats WHERE source = 'scheduler'")
    return [r["last_beat_at"].timestamp() for r in rows]


async def test_heartbeat_upserts_one_row_per_node_on_the_clock(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    heartbeat = Heartbeat(db, clock, "node-a", interval_s=300)
    async with trio.open_nursery() as nursery:
        await nursery.start(heartbeat.run)
        assert heartbeat.beats == 1
        assert await _beat_times(db) == [EPOCH]
        with trio.fail_after(10_000):
            while heartbeat.beats < 13:  # one hour of virtual time
                await trio.sleep(60)
        nursery.cancel_scope.cancel()
    assert await _beat_times(db) == [EPOCH + 12 * 300]


async def test_readiness_reports_a_stale_heartbeat_after_ten_minutes(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    health = HealthState(Supervisor(trio.Event()), clock, "node-a", db=db, migrated=True)
    missing = await health.readiness()
    assert not missing.ready and missing.checks["heartbeat"] == "missing"

    await Heartbeat(db, clock, "node-a", interval_s=300).beat()
    fresh = await health.readiness()
    assert fresh.ready, fresh.problems

    await trio.sleep(601)
    stale = await health.readiness()
    assert not stale.ready
    assert stale.checks["heartbeat"] == "stale (601 s old)"
    assert stale.problems == ("heartbeat: last beat 601 s ago (limit 600 s)",)


async def test_readiness_names_the_database_when_it_is_unreachable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    health = HealthState(Supervisor(trio.Event()), TrioClock(EPOCH), "node-a", db=None, migrated=False)
    result = await health.readiness()
    assert not result.ready
    assert result.checks["database"] == "unreachable"
    assert result.checks["migrations"] == "pending"
