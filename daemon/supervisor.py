"""The supervisor: starts actors with `nursery.start`, restarts crashed ones with backoff.

An actor is any object with a `name` and an `async def run(self, *, task_status)`
that calls `task_status.started(value)` once it is really serving. The supervisor's
`start` returns that value only after the first successful start, so the daemon
can send READY=1 when every actor is up. A crash is logged with its context and
the actor restarted after an exponential backoff; an actor that keeps crashing
shows in `/readyz`. An actor whose very first start fails makes the daemon's start
fail with that error. Actors with `drains = True` are waited for on shutdown.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Protocol

import attrs
import trio

from deneva.backoff import Backoff
from deneva.errors import root_cause

log = logging.getLogger("deneva.supervisor")

CRASH_WINDOW_S = 300.0
CRASHES_TO_FAIL = 3


class Actor(Protocol):
    name: str

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None: ...


@attrs.define
class ActorState:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    crash_times: deque[float] = attrs.Factory(lambda: deque(maxlen=16))

    def problem(self, now: float, errors: bool = True) -> str | None:
        """What is wrong with this actor, if anything; with `errors`, its last error too."""
        recent = sum(1 for t in self.crash_times if now - t < CRASH_WINDOW_S)
        error = f" ({self.last_error})" if errors and self.last_error else ""
        if not self.running:
            return f"actor {self.name} is not running{error}"
        if recent >= CRASHES_TO_FAIL:
            return f"actor {self.name} crashed {recent} times in {CRASH_WINDOW_S:.0f} s{error}"
        return None


RESTART_BACKOFF = Backoff(base_s=0.2, factor=2.0, max_s=30.0, jitter=0.1)
RESET_AFTER_S = 60.0  # an actor that ran this long before crashing restarts at the first delay


class Supervisor:
    def __init__(
        self, drain: trio.Event, backoff: Backoff = RESTART_BACKOFF, reset_after_s: float = RESET_AFTER_S
    ) -> None:
        self.drain = drain
        self.backoff = backoff
        self.reset_after_s = reset_after_s
        self.actors: dict[str, ActorState] = {}
        self._draining_actors: set[str] = set()
        self._drained = trio.Event()

    def problems(self, errors: bool = True) -> list[str]:
        """Each failing actor's problem; without `errors` (what /readyz shows), no error
        text, which may hold internal detail (the log has it)."""
        now = trio.current_time()
        return [p for state in self.actors.values() if (p := state.problem(now, errors)) is not None]

    async def start(self, nursery: trio.Nursery, actor: Actor) -> Any:
        """Start `actor` under supervision in `nursery`; return what it reported as started."""
        if actor.name in self.actors:
            raise ValueError(f"an actor named {actor.name!r} is already supervised")
        self.actors[actor.name] = ActorState(actor.name)
        if getattr(actor, "drains", False):
            self._draining_actors.add(actor.name)
        return await nursery.start(self._supervise, actor)

    async def wait_drained(self) -> None:
        if self._draining_actors:
            await self._drained.wait()

    def _finished(self, name: str) -> None:
        self._draining_actors.discard(name)
        if not self._draining_actors:
            self._drained.set()

    async def _supervise(self, actor: Actor, *, task_status: trio.TaskStatus[Any]) -> None:
        state = self.actors[actor.name]
        attempt = 0  # crashes since the actor last ran for reset_after_s
        reported = False
        try:
            while True:
                began = trio.current_time()
                try:
                    async with trio.open_nursery() as nursery:
                        value = await nursery.start(actor.run)
                        state.running = True
                        if not reported:
                            reported = True
                            task_status.started(value)
                    state.running = False
                    if self.drain.is_set():
                        return
                    log.warning("actor returned unexpectedly; restarting", extra={"actor": actor.name})
                except Exception as exc:
                    state.running = False
                    if not reported:
                        # A first start that fails fails the daemon's start, with its reason.
                        raise
                    state.restarts += 1
                    cause = root_cause(exc)
                    state.last_error = f"{type(cause).__name__}: {cause}"
                    state.crash_times.append(trio.current_time())
                    if self.drain.is_set():
                        log.warning(
                            "actor failed while draining",
                            extra={"actor": actor.name, "error": state.last_error},
                        )
                        return
                    if trio.current_time() - began > self.reset_after_s:
                        attempt = 0
                    attempt += 1
                    delay = self.backoff.delay(attempt)
                    log.error(
                        "actor crashed; restarting",
                        exc_info=exc,
                        extra={
                            "actor": actor.name,
                            "restarts": state.restarts,
                            "retry_in_s": round(delay, 2),
                        },
                    )
                    await trio.sleep(delay)
                    continue
                await trio.sleep(self.backoff.delay(1))
        finally:
            state.running = False
            self._finished(actor.name)
