"""The scheduler: turns the registry's cron triggers into runs, on the one injectable clock.

Each (function, tick) is a unique row written in the same transaction as the run it
starts (`Engine.fire_ticks`), so any number of schedulers (replicas) fire each tick
exactly once. After downtime, and when a paused function is resumed, missed ticks follow
the trigger's policy (`deneva.engine.ticks`): fire the latest one (default), fire them
all (up to 100), or skip them. A tick that cannot be written (database down) is retried,
never dropped (seed 003: no dead zone). A pause or resume anywhere wakes it through its
channel (the listener forwards `deneva_paused`); it re-reads what is paused at least
every minute anyway.
"""

from __future__ import annotations

from typing import Any

import trio

from deneva.engine.engine import Engine
from deneva.engine.ticks import CronCursor, keep_schedule


class Scheduler:
    name = "scheduler"

    def __init__(self, engine: Engine, wake: trio.MemoryReceiveChannel[None] | None = None) -> None:
        self.engine = engine
        self.wake = wake
        self.cursor = CronCursor(engine.cron_entries())

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        await keep_schedule(self.engine, self.cursor, self.wake, task_status=task_status)
