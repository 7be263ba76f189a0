"""Cron bookkeeping and the loop that fires it, shared by every actor that fires ticks
(the scheduler fires the registry's cron triggers; the janitor its configured passes):
which ticks are due since each entry's cursor, what to catch up on after downtime or a
pause (per the trigger's missed-tick policy), and `keep_schedule`, the loop itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs
import trio

from deneva.clock import Clock
from deneva.engine.functions import CronTrigger, Function
from deneva.errors import DatabaseError

log = logging.getLogger("deneva.engine.ticks")

MAX_CATCH_UP = 100  # missed="all" fires at most this many missed ticks
RETRY_S = 1.0  # a tick that could not be written is tried again this soon
PAUSE_POLL_S = 60.0  # what is paused is re-read at least this often
_SEARCH_LIMIT = 100_000


@attrs.frozen
class Tick:
    """One cron tick of one function, to fire."""

    function: Function
    trigger: CronTrigger
    at: float


@attrs.frozen
class FiredTicks:
    fired: tuple[tuple[str, float], ...]
    paused: frozenset[str]  # what is paused now ("*": everything)


class TickFirer(Protocol):
    """What fires ticks (the engine): exactly once each across replicas."""

    clock: Clock

    async def fire_ticks(self, ticks: Sequence[Tick]) -> FiredTicks: ...

    async def last_ticks(self, function_ids: Sequence[str]) -> dict[str, float]: ...


def due_ticks(trigger: CronTrigger, after: float, now: float) -> list[float]:
    """The ticks in (after, now] to fire. One is always fired; more than one means ticks
    were missed (downtime, a pause), and the trigger's policy decides: the latest only
    ("once", the default), all of them up to MAX_CATCH_UP ("all"), or none ("skip")."""
    ticks = trigger.schedule.ticks_between(after, now, limit=_SEARCH_LIMIT)
    if len(ticks) <= 1:
        return ticks
    if trigger.missed == "skip":
        return []
    if trigger.missed == "once":
        return ticks[-1:]
    return ticks[-MAX_CATCH_UP:]


class CronCursor:
    """Where a set of cron entries stands.

    `catch_up` gives what was missed since each entry's last recorded tick; `due` what
    fell due since the cursor; `advance` moves the cursor. Entries whose function is
    paused are fired like the others (the engine records nothing for them); when their
    pause ends (`set_paused` says which), `catch_up` from their last recorded tick
    applies the missed-tick policy to what the pause held back.
    """

    def __init__(self, entries: Sequence[tuple[Function, CronTrigger]]) -> None:
        self.entries = list(entries)
        self.cursor: float | None = None
        self.paused: set[str] = set()

    def function_ids(self) -> list[str]:
        return sorted({f.id for f, _ in self.entries})

    def catch_up(
        self, last: Mapping[str, float], now: float, only: Iterable[str] | None = None
    ) -> list[Tick]:
        chosen = None if only is None else set(only)
        return [
            Tick(f, t, at)
            for f, t in self.entries
            if f.id in last and (chosen is None or f.id in chosen)
            for at in due_ticks(t, last[f.id], now)
        ]

    def next_at(self) -> float:
        assert self.cursor is not None, "advance() the cursor first"
        return min(t.schedule.next_after(self.cursor) for _, t in self.entries)

    def due(self, now: float) -> list[Tick]:
        assert self.cursor is not None, "advance() the cursor first"
        cursor = self.cursor
        return [Tick(f, t, at) for f, t in self.entries for at in due_ticks(t, cursor, now)]

    def advance(self, now: float) -> None:
        self.cursor = now

    def set_paused(self, paused: Iterable[str]) -> set[str]:
        """Record what is paused now; returns the entries' functions whose pause ended."""
        paused = set(paused)
        ids = {f.id for f, _ in self.entries}
        held = ids if "*" in self.paused else self.paused & ids
        now_held = ids if "*" in paused else paused & ids
        self.paused = paused
        return held - now_held


async def keep_schedule(
    firer: TickFirer,
    cursor: CronCursor,
    wake: trio.MemoryReceiveChannel[None] | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Fire `cursor`'s ticks as they fall due, forever. First what was missed while no one
    fired them; after that, each tick once. A wake-up on `wake` (a pause or resume
    somewhere) re-reads what is paused at once and fires what a resumed pause held back."""
    clock = firer.clock
    if not cursor.entries:
        task_status.started()
        await trio.sleep_forever()

    async def fire_and_catch_up(ticks: list[Tick], now: float) -> None:
        result = await firer.fire_ticks(ticks)
        resumed = cursor.set_paused(result.paused)
        if resumed:
            last = await firer.last_ticks(sorted(resumed))
            missed = cursor.catch_up(last, now, only=resumed)
            if missed:
                await firer.fire_ticks(missed)

    now = clock.now()
    last = await firer.last_ticks(cursor.function_ids())
    cursor.set_paused((await firer.fire_ticks(cursor.catch_up(last, now))).paused)
    cursor.advance(now)
    task_status.started()
    while True:
        wake_at = min(cursor.next_at(), clock.now() + PAUSE_POLL_S)
        with trio.move_on_after(max(0.0, wake_at - clock.now())):
            if wake is None:
                await trio.sleep_forever()
            await wake.receive()
        now = clock.now()
        try:
            await fire_and_catch_up(cursor.due(now), now)
        except DatabaseError as exc:
            log.warning("could not record cron ticks; retrying", extra={"error": str(exc)})
            await trio.sleep(RETRY_S)
            continue
        cursor.advance(now)
