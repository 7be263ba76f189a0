"""The janitor actor: fires the retention passes (`deneva.retention`) on their schedules.

The schedules and retentions are the operator's configuration, validated when the
daemon starts (a bad cron or duration stops the start, naming its key), so they are
kept apart from the code's cron triggers, which the scheduler fires. Each pass is an
engine run (durable, retried once, visible in `deneva runs` with its counts); it fires
through the engine like any tick, exactly once across replicas, held back while its
function or the engine is paused, and after downtime the latest missed pass runs once.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.engine.engine import Engine
from deneva.engine.ticks import CronCursor, keep_schedule
from deneva.retention import JanitorPlan

log = logging.getLogger("deneva.janitor")


class Janitor:
    name = "janitor"

    def __init__(
        self, engine: Engine, plan: JanitorPlan, wake: trio.MemoryReceiveChannel[None] | None
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.wake = wake
        self.cursor = CronCursor(plan.entries(engine.registry))

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        log.info("janitor schedule", extra={"schedules": dict(self.plan.schedules)})
        await keep_schedule(self.engine, self.cursor, self.wake, task_status=task_status)
