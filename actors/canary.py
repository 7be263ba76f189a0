"""The canary actor: asks for a heartbeat at start, then watches the engine's canary.

At start it sends `deneva/canary` (one `heartbeat` run, through the dispatcher like any
other), so a freshly started daemon has a beat within moments instead of at the next
5-minute tick. Then, every `interval_s`, it reads the latest beat: its age is what
`/metrics` reports, and when the beat goes stale (older than `MAX_AGE_S`: the scheduler,
the dispatcher or the workers are stuck) or fresh again, it says so once in the log.
`/readyz` and `/admin/health/scheduler` read the beat themselves, never this actor. Each
look also records this node's own beat (`deneva.canary.replica_beat`), which the console
lists as the replicas seen.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.canary import CANARY_EVENT, MAX_AGE_S, replica_beat
from deneva.engine.engine import Engine
from deneva.engine.errors import EngineError
from deneva.errors import DatabaseError

log = logging.getLogger("deneva.canary")


class Canary:
    name = "canary"

    def __init__(self, engine: Engine, node: str, interval_s: float) -> None:
        self.engine = engine
        self.node = node
        self.interval_s = interval_s
        self.age_s: float | None = None  # of the latest beat, when last read
        self.stale = False

    async def _ask_for_a_beat(self) -> None:
        now = self.engine.clock.now()
        event_id = f"canary:{self.node}:{int(now * 1000)}"
        await self.engine.send({"name": CANARY_EVENT, "id": event_id, "data": {"node": self.node}})

    async def _look(self) -> None:
        now = self.engine.clock.now()
        beat = await replica_beat(self.engine.db, self.node, now)
        self.age_s = None if beat is None else beat.age_s(now)
        stale = self.age_s is not None and self.age_s > MAX_AGE_S
        if stale and not self.stale:
            log.error(
                "engine canary is stale: no heartbeat run got through for over 10 minutes "
                "(scheduler, dispatcher or workers stuck)",
                extra={"age_s": round(self.age_s or 0.0), "last_node": beat.node if beat else None},
            )
        elif self.stale and not stale:
            log.info("engine canary is fresh again", extra={"age_s": round(self.age_s or 0.0)})
        self.stale = stale

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._ask_for_a_beat()
        except (DatabaseError, EngineError) as exc:
            log.warning("could not ask for a start-up heartbeat", extra={"error": str(exc)})
        task_status.started()
        while True:
            try:
                await self._look()
            except DatabaseError as exc:
                log.warning("could not read the engine canary", extra={"error": str(exc)})
            await trio.sleep(self.interval_s)
