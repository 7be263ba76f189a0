"""The scheduler: turns cron schedules into runs, on the one injectable clock.

Each (function, tick) is a unique row in `engine_cron_ticks`, written in the same
transaction as the run it starts, so any number of schedulers (replicas) fire each
tick exactly once. After downtime, missed ticks follow the trigger's policy: fire
the latest one (default), fire them all (up to 100), or skip them. A tick that
cannot be written (database down) is retried, never dropped (seed 003: no dead zone).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.clock import as_datetime
from deneva.engine import store
from deneva.engine.engine import Engine
from deneva.engine.events import Event
from deneva.engine.functions import CRON_EVENT, CronTrigger, Function
from deneva.engine.model import NewRun
from deneva.errors import DatabaseError

log = logging.getLogger("deneva.scheduler")
MAX_CATCH_UP = 100
RETRY_S = 1.0


class Scheduler:
    name = "scheduler"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.crons: list[tuple[Function, CronTrigger]] = engine.registry.crons()
        self.cursors: list[float] = []
        self.fired = 0

    def _event(self, function: Function, trigger: CronTrigger, tick: float) -> Event:
        tick_ms = int(tick * 1000)
        return Event(
            CRON_EVENT,
            {
                "function_id": function.id,
                "cron": str(trigger.expression),
                "tick": as_datetime(tick).isoformat(),
            },
            f"cron:{function.id}:{tick_ms}",
            tick,
        )

    def _due(self, trigger: CronTrigger, after: float, now: float) -> list[float]:
        ticks = trigger.schedule.ticks_between(after, now, limit=100_000)
        if len(ticks) <= 1:
            return ticks
        if trigger.missed == "skip":
            return []
        if trigger.missed == "once":
            return ticks[-1:]
        return ticks[-MAX_CATCH_UP:]

    async def _fire(self, pairs: list[tuple[Function, CronTrigger, float]]) -> None:
        engine = self.engine
        now = engine.clock.now()
        ticks: list[tuple[str, float]] = []
        runs: list[NewRun] = []
        for function, trigger, tick in pairs:
            ticks.append((function.id, tick))
            runs.append(store.plan_run(function, self._event(function, trigger, tick).document(), now))
        fired = await engine.db.run(lambda conn: store.fire_ticks(conn, ticks, runs, now))
        self.fired += len(fired)
        if fired:
            engine.wake()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine
        clock = engine.clock
        if not self.crons:
            task_status.started()
            await trio.sleep_forever()
        last = await engine.db.run(lambda conn: store.last_ticks(conn, [f.id for f, _ in self.crons]))
        now = clock.now()
        # Catch up on what was missed while no scheduler ran (per the trigger's policy).
        missed = [
            (f, t, tick) for f, t in self.crons if f.id in last for tick in self._due(t, last[f.id], now)
        ]
        if missed:
            await self._fire(missed)
        self.cursors = [now for _ in self.crons]
        task_status.started()
        while True:
            next_tick = min(
                t.schedule.next_after(c) for (_, t), c in zip(self.crons, self.cursors, strict=True)
            )
            await clock.sleep_until(next_tick)
            now = clock.now()
            due: list[tuple[Function, CronTrigger, float]] = []
            for (function, trigger), cursor in zip(self.crons, self.cursors, strict=True):
                due += [(function, trigger, tick) for tick in self._due(trigger, cursor, now)]
            try:
                await self._fire(due)
            except DatabaseError as exc:
                log.warning("could not record cron ticks; retrying", extra={"error": str(exc)})
                await trio.sleep(RETRY_S)
                continue
            self.cursors = [now for _ in self.crons]
