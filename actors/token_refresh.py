"""The token-refresh actor (seed 000 §D), driven by deadlines rather than a poll.

It asks which credentials are due (their token expires within the platform's margin),
sends one `refresh-one-token` request for each (ids that name the expiry and a
15-minute slot, so replicas and repeats ask once), and sleeps until the next deadline.
A credential connected or refreshed anywhere wakes it through its channel (the listener
forwards `deneva_credentials`, and wakes it after every reconnect of its LISTEN
connection), so a new deadline is seen at once. It looks at least every `max_sleep_s`
(an hour) only so that a wall clock stepped by hand cannot leave it asleep past a
deadline. A database outage is retried after `retry_s`. Once a day (and at start) it logs
`reconnect needed`, with the command, for every credential that waits for an operator:
refused by its platform, or a Meta token within 7 days of its expiry.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.engine.engine import Engine
from deneva.engine.errors import EngineError
from deneva.engine.events import MAX_BATCH
from deneva.errors import DatabaseError
from deneva.sync.reconnect import log_reconnect_needed
from deneva.sync.tokens import SLOT_S, TokenDeadlines

log = logging.getLogger("deneva.token_refresh")


class TokenRefresher:
    name = "token-refresh"

    def __init__(
        self,
        engine: Engine,
        deadlines: TokenDeadlines,
        wake: trio.MemoryReceiveChannel[None] | None = None,
        *,
        max_sleep_s: float = 3600.0,
        retry_s: float = 30.0,
        reconnect_log_s: float = 86_400.0,
    ) -> None:
        self.engine = engine
        self.deadlines = deadlines
        self.wake = wake
        self.max_sleep_s = max_sleep_s
        self.retry_s = retry_s
        self.reconnect_log_s = reconnect_log_s
        self.requested = 0  # refresh requests sent (duplicates included)
        self.next_wake: float | None = None
        self.next_reconnect_log: float | None = None  # None: at the first round

    async def _round(self, now: float) -> float:
        """Send the due refreshes; when to look again."""
        due = await self.deadlines.due(now)
        events = list(due.events)
        for start in range(0, len(events), MAX_BATCH):
            await self.engine.send(events[start : start + MAX_BATCH])
        self.requested += len(events)
        if self.next_reconnect_log is None or now >= self.next_reconnect_log:
            for waiting in await self.deadlines.reconnects(now):
                log_reconnect_needed(waiting.platform, waiting.tenant, waiting.account_id, waiting.reason)
            self.next_reconnect_log = now + self.reconnect_log_s
        wake_at = min(now + self.max_sleep_s, self.next_reconnect_log)
        if due.next_due is not None:
            wake_at = min(wake_at, due.next_due)
        if events:  # still due in the next slot if the refresh did not go through
            wake_at = min(wake_at, now + SLOT_S)
        return wake_at

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        clock = self.engine.clock
        started = False
        while True:
            now = clock.now()
            try:
                wake_at = await self._round(now)
            except (DatabaseError, EngineError) as exc:
                log.warning("could not look for expiring tokens; retrying", extra={"error": str(exc)})
                wake_at = now + self.retry_s
            self.next_wake = wake_at
            if not started:  # started once the first round has looked (or failed to)
                started = True
                task_status.started()
            with trio.move_on_after(max(0.0, wake_at - clock.now())):
                if self.wake is None:
                    await trio.sleep_forever()
                await self.wake.receive()
