"""Engine fixtures: a real database, the real dispatcher and scheduler, virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from deneva.actors.dispatcher import Dispatcher
from deneva.actors.scheduler import Scheduler
from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.functions import Registry

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@asynccontextmanager
async def running_engine(
    db: Database,
    registry: Registry,
    *,
    owner: str = "test-worker",
    workers: int = 16,
    scheduler: bool = True,
    dispatcher: bool = True,
    poll_s: float = 30.0,
    rescue_every_s: float = 30.0,
) -> AsyncIterator[Engine]:
    clock = TrioClock(EPOCH - trio.current_time())
    settings = EngineSettings(workers=workers, lease_s=15, poll_s=poll_s, rescue_every_s=rescue_every_s)
    engine = Engine(db, registry, clock, owner, settings)
    drain = trio.Event()
    async with trio.open_nursery() as nursery:
        if dispatcher:
            await nursery.start(Dispatcher(engine, drain).run)
        if scheduler:
            await nursery.start(Scheduler(engine).run)
        yield engine
        nursery.cancel_scope.cancel()
