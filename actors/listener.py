"""The listener: one LISTEN connection for the daemon, forwarding what other processes
say to the actors that care, as wake-ups on their channels.

- `deneva_runs` (runs became due: sent, retried, resumed, rescued, released, resumed by
  an operator) wakes the dispatcher; this process's own notifications are skipped (its
  engine wakes the dispatcher directly).
- `deneva_paused` (a function or the engine was paused or resumed) wakes the scheduler
  and the janitor, which re-read what is paused and catch up on what a pause held back.
- `deneva_credentials` (a credential was connected or its token stored) wakes the
  token-refresh actor, which re-reads the earliest expiry.

After every (re)connect each channel gets a wake-up, since something may have been
missed while the connection was down; polling in each actor stays the safety net.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from deneva.db import Database


@attrs.frozen
class Route:
    """Where notifications on one Postgres channel go."""

    wakes: Sequence[trio.MemorySendChannel[None]]
    skip_own: bool = False  # drop notifications sent by this process's own pool


class Listener:
    name = "listener"

    def __init__(self, db: Database, routes: Mapping[str, Route]) -> None:
        self.db = db
        self.routes = dict(routes)
        self.heard = 0

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        skip_own = [channel for channel, route in self.routes.items() if route.skip_own]
        async with self.db.listen(*self.routes, skip_own=skip_own) as notes:
            task_status.started()
            async for channel, _payload in notes:
                self.heard += 1
                for wake in self.routes[channel].wakes:
                    try:
                        wake.send_nowait(None)
                    except trio.WouldBlock:
                        pass  # a wake-up is pending already
