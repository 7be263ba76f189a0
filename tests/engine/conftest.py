"""Engine fixtures: a real database, the real circuit (listener, dispatcher, lifeline,
scheduler) as the daemon wires it, virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.functions import Registry
from deneva.wiring import Circuit, engine_circuit

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@asynccontextmanager
async def running(circuit: Circuit) -> AsyncIterator[Circuit]:
    """Start every actor of `circuit` (each reports started first), stop them after."""
    async with trio.open_nursery() as nursery:
        for actor in circuit.actors:
            await nursery.start(actor.run)
        yield circuit
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running_circuit(
    db: Database,
    registry: Registry,
    *,
    owner: str = "test-worker",
    workers: int = 16,
    scheduler: bool = True,
    dispatcher: bool = True,
    poll_s: float = 30.0,
    rescue_every_s: float = 30.0,
    lease_s: float = 15.0,
    lease_clock: str = "database",
    drain: trio.Event | None = None,
    epoch: float = EPOCH,
) -> AsyncIterator[Circuit]:
    clock = TrioClock(epoch - trio.current_time())
    settings = EngineSettings(
        workers=workers,
        lease_s=lease_s,
        poll_s=poll_s,
        rescue_every_s=rescue_every_s,
        lease_clock=lease_clock,  # type: ignore[arg-type]
    )
    circuit = engine_circuit(
        db,
        registry,
        clock,
        owner,
        settings,
        drain=trio.Event() if drain is None else drain,
        dispatch=dispatcher,
        schedule=scheduler,
    )
    async with running(circuit):
        yield circuit


@asynccontextmanager
async def running_engine(db: Database, registry: Registry, **options: object) -> AsyncIterator[Engine]:
    async with running_circuit(db, registry, **options) as circuit:  # type: ignore[arg-type]
        yield circuit.engine


async def as_owner(database_url: str, *statements: str) -> None:
    """Run statements as the database's owner (the engine's pool role cannot make
    triggers, sequences or functions: what tests inject faults with)."""
    owner = await Database.open(database_url, role=None, min_size=1)
    try:
        for sql in statements:
            await owner.execute(sql)
    finally:
        await owner.close()
