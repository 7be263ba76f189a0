"""The lifeline: keeps this process's leases alive and rescues the orphans of others.

Every `lease_s / 3` it renews the lease of every run this engine holds (learning on the
way which of them were asked to cancel); every `rescue_every_s` it re-queues runs of any
replica whose lease expired, so a run of a worker that died runs again within a lease
and a rescue period. A database outage skips a round (logged); the next one catches up.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.engine.engine import Engine
from deneva.errors import DatabaseError

log = logging.getLogger("deneva.lifeline")


class Lifeline:
    name = "lifeline"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rounds = 0
        self.rescued = 0

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine
        settings = engine.settings
        next_rescue = engine.clock.now()
        task_status.started()
        while True:
            await trio.sleep(settings.lease_s / 3)
            now = engine.clock.now()
            try:
                await engine.renew_leases()
                if now >= next_rescue:
                    next_rescue = now + settings.rescue_every_s
                    self.rescued += await engine.rescue_orphans()
            except DatabaseError as exc:
                log.warning("lease upkeep failed; next round retries", extra={"error": str(exc)})
            self.rounds += 1
