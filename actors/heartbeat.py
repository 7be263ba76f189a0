"""The heartbeat actor: upserts this node's `heartbeats` row on the one clock (seed 000 §G).

A missing or old row is the dead-canary signal: `/readyz` and
`/admin/health/scheduler` read it. A database outage skips beats (logged) instead
of crashing, so readiness recovers as soon as the database does.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.clock import Clock, as_datetime
from deneva.db import Database
from deneva.errors import DatabaseUnavailable
from deneva.sql import query

log = logging.getLogger("deneva.heartbeat")

SOURCE = "scheduler"
_UPSERT = query("upsert_heartbeat")


class Heartbeat:
    name = "heartbeat"

    def __init__(self, db: Database, clock: Clock, node: str, interval_s: float) -> None:
        self.db = db
        self.clock = clock
        self.node = node
        self.interval_s = interval_s
        self.beats = 0

    async def beat(self) -> None:
        await self.db.execute(_UPSERT, SOURCE, self.node, as_datetime(self.clock.now()))
        self.beats += 1

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        await self.beat()
        task_status.started()
        next_beat = self.clock.now() + self.interval_s
        while True:
            await self.clock.sleep_until(next_beat)
            next_beat += self.interval_s
            if next_beat <= self.clock.now():  # fell behind (suspend, outage): no burst
                next_beat = self.clock.now() + self.interval_s
            try:
                await self.beat()
            except DatabaseUnavailable as exc:
                log.warning("heartbeat skipped: database unavailable", extra={"error": str(exc)})
