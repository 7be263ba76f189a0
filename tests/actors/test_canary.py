"""The engine canary (seed 000 §G): the `heartbeat` function beats only once its run got
through scheduler, dispatcher and a worker, so a stuck part of that path turns
`/admin/health/scheduler` and `/readyz` 503 within 10 minutes. Real circuit, real
database, virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from deneva.canary import HEARTBEAT, CanaryServices, latest_beat, register_canary
from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.context import Context
from deneva.engine.engine import EngineSettings
from deneva.engine.functions import EventTrigger, Function, Registry
from deneva.functions import Bound
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.secrets import Secret
from deneva.supervisor import Supervisor
from deneva.wiring import CanaryPlan, Circuit, engine_circuit
from tests.engine.conftest import EPOCH, running

TOKEN = "admin-token-0123456789abcdef"


async def _hog(ctx: Context) -> None:
    await trio.sleep_forever()  # holds its worker slot


@asynccontextmanager
async def canary_circuit(db: Database, *, workers: int = 4, scheduler: bool = True) -> AsyncIterator[Circuit]:
    clock = TrioClock(EPOCH - trio.current_time())
    registry = register_builtin(Registry())
    services: Bound[CanaryServices] = Bound("canary")
    register_canary(registry, services.get)
    registry.add(Function("hog", _hog, (EventTrigger("test/hog"),), retries=0))
    services.value = CanaryServices(db, clock, "node-a")
    circuit = engine_circuit(
        db,
        registry,
        clock,
        "node-a:1",
        EngineSettings(workers=workers, poll_s=30, lease_s=60),
        drain=trio.Event(),
        schedule=scheduler,
        canary=CanaryPlan("node-a", 30),
    )
    async with running(circuit):
        yield circuit


async def _heartbeat_runs(db: Database) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM engine_runs WHERE function_id = $1 AND status = 'succeeded'", HEARTBEAT
        )
    )


async def _first_beat(db: Database) -> float:
    with trio.fail_after(60):
        while (beat := await latest_beat(db)) is None:
            await trio.sleep(0.5)
    return beat.at.timestamp()


def _admin(circuit: Circuit, db: Database) -> Any:
    health = HealthState(Supervisor(trio.Event()), circuit.engine.clock, "node-a", db=db, migrated=True)
    app = create_app(health, admin_token=Secret("DENEVA_ADMIN_TOKEN", TOKEN))
    return health, app.test_client()


async def test_heartbeat_runs_through_the_engine_at_start_and_every_five_minutes(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with canary_circuit(db) as circuit:
        clock = circuit.engine.clock
        first = await _first_beat(db)  # asked for by the canary actor at start
        assert first - EPOCH < 5
        # The beat is written by the run's step; the run's completion commits just after.
        with trio.fail_after(5):
            while await _heartbeat_runs(db) < 1:
                await trio.sleep(0.1)
        assert await _heartbeat_runs(db) == 1
        await trio.sleep(30 * 60 + 10)
        assert await _heartbeat_runs(db) == 1 + 6  # the ticks at :05, :10, ... :30
        beat = await latest_beat(db)
        assert beat is not None and beat.node == "node-a"
        assert beat.age_s(clock.now()) < 60  # the :30 tick's beat
        assert circuit.actor("canary").age_s < 5 * 60 + 30


@pytest.mark.parametrize("stuck", ["workers", "scheduler"])
async def test_a_stuck_engine_turns_the_canary_503_within_ten_minutes(
    db: Database, autojump_clock: trio.testing.MockClock, stuck: str
) -> None:
    async with canary_circuit(db, workers=1, scheduler=stuck != "scheduler") as circuit:
        engine = circuit.engine
        health, client = _admin(circuit, db)
        first = await _first_beat(db)
        if stuck == "workers":
            await engine.send({"name": "test/hog"})  # the only worker slot, held for good
        fresh = await client.get("/admin/health/scheduler", headers={"x-admin-token": TOKEN})
        assert fresh.status_code == 200 and (await health.readiness()).ready

        await trio.sleep(first + 9 * 60 + 50 - engine.clock.now())  # 9 min 50 s after the beat
        still = await client.get("/admin/health/scheduler", headers={"x-admin-token": TOKEN})
        assert still.status_code == 200

        await trio.sleep(first + 10 * 60 + 1 - engine.clock.now())
        stale = await client.get("/admin/health/scheduler", headers={"x-admin-token": TOKEN})
        assert stale.status_code == 503
        body = await stale.get_json()
        assert body["alive"] is False and body["ageMs"] > 600_000
        readiness = await health.readiness()
        assert not readiness.ready and readiness.checks["heartbeat"].startswith("stale")
        # No beat got through since the first, whatever the cron asked for meanwhile.
        assert await _heartbeat_runs(db) == 1
        await trio.sleep(60)  # the canary actor looks every 30 s: it has said so
        assert circuit.actor("canary").stale is True
