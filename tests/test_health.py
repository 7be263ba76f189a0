"""Readiness (/readyz), on the injectable clock (MockClock): the database, migrations,
actors and the engine canary's beat."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import pytest
import trio
import trio.testing

from deneva.backoff import Backoff
from deneva.canary import record_beat
from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.builtin import default_registry
from deneva.engine.engine import Engine
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.supervisor import Supervisor
from tests.conftest import Cluster
from tests.http.test_admin import CountingDb

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


async def test_concurrent_readyz_probes_share_one_database_check_a_second(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    counting = CountingDb(db)  # counts the crossings to the database
    health = HealthState(Supervisor(trio.Event()), clock, "node", db=cast(Database, counting), migrated=True)
    await record_beat(db, "node-a", clock.now())
    client = create_app(health).test_client()
    answers: list[tuple[int, Any]] = []

    async def probe() -> None:
        response = await client.get("/readyz")
        answers.append((response.status_code, await response.get_json()))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(probe)
    assert len(answers) == 50 and all(status == 200 for status, _ in answers)
    assert counting.crossings == 1  # one check answered all fifty
    await trio.sleep(0.9)
    await probe()
    assert counting.crossings == 1
    await trio.sleep(0.1)
    await probe()
    assert counting.crossings == 2  # a second later the state is checked again
    assert answers[-1][0] == 200


class Leaky:
    """Crashes once with an error that carries a connection string, then serves."""

    name = "leaky"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.crashed = False

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if not self.crashed:
            self.crashed = True
            raise RuntimeError(f"could not connect to {self.dsn}")
        await trio.sleep_forever()


async def test_readyz_names_the_failing_part_but_never_shows_internal_error_text(
    cluster: Cluster, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    name = cluster.new_database()
    dsn = cluster.dsn(name)
    db = await Database.open(dsn)
    clock = TrioClock(EPOCH - trio.current_time())
    supervisor = Supervisor(trio.Event(), Backoff(base_s=60.0, jitter=0))
    health = HealthState(supervisor, clock, "node-a", db=db, migrated=True)
    client = create_app(health).test_client()
    try:
        async with trio.open_nursery() as nursery:
            await supervisor.start(nursery, Leaky(dsn))
            await trio.sleep(1)  # crashed, waiting out its backoff
            cluster.admin(f'DROP DATABASE "{name}" WITH (FORCE)')
            with caplog.at_level(logging.WARNING, logger="deneva.health"):
                response = await client.get("/readyz")
            body = await response.get_json()
            nursery.cancel_scope.cancel()
    finally:
        await db.close()
    assert response.status_code == 503
    assert body["checks"] == {
        "database": "unreachable",
        "heartbeat": "unknown",
        "migrations": "ok",
        "actors": "failing",
    }
    assert body["problems"] == [
        "database: unreachable (the daemon's log has the error)",
        "actor: actor leaky is not running",
    ]
    text = json.dumps(body)
    assert name not in text and "RuntimeError" not in text and "postgresql://" not in text
    logged = [r for r in caplog.records if r.name == "deneva.health"]
    assert [r.getMessage() for r in logged] == ["readiness: the database check failed"]
    assert name in logged[0].error  # type: ignore[attr-defined]  # the detail went to the log
