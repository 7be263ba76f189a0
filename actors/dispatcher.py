"""The dispatcher: claims due runs in batches and runs them in a bounded worker nursery.

Wake-ups arrive on its channel (from this process's engine, and from other replicas
through the listener), and from the earliest future `run_at` it learnt while claiming;
polling every `poll_s` is the safety net. On drain it stops claiming, lets runs in
flight finish, and gives back whatever it could not finish. It talks to the engine
only through the engine's API; leases are the lifeline's business.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva.backoff import Backoff
from deneva.engine.engine import Engine
from deneva.engine.model import ClaimedRun, Transition
from deneva.errors import DatabaseError, DatabaseUnavailable, TransactionConflict

log = logging.getLogger("deneva.dispatcher")

# Writing an outcome that failed for a reason that may pass (a deadlock, a lost
# connection) is retried while the run's lease is held: about 30 s in all, within which
# the lifeline keeps renewing it.
COMPLETE_ATTEMPTS = 10
COMPLETE_BACKOFF = Backoff(base_s=0.1, factor=2.0, max_s=10.0)


class Dispatcher:
    name = "dispatcher"
    drains = True

    def __init__(self, engine: Engine, wake: trio.MemoryReceiveChannel[None], drain: trio.Event) -> None:
        self.engine = engine
        self.wake = wake
        self.drain = drain
        self.executing = 0  # functions running now: what the worker limit bounds
        self.abandoned: list[ClaimedRun] = []  # cancelled mid-run (shutdown): given back
        self._slot_free = trio.Event()
        self.started = 0
        self.finished = 0
        self.claims = 0
        self.completion_retries = 0

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine
        async with trio.open_nursery() as services:
            await services.start(engine.run_writers)
            services.start_soon(self._wake_on_drain)
            try:
                async with trio.open_nursery() as workers:
                    task_status.started()
                    await self._claim_loop(workers)
                # Drained: what finished is being written; flush and stop.
                await engine.flush()
            finally:
                unfinished = list(self.abandoned)
                if unfinished:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        released = await engine.release(unfinished)
                        log.info("released unfinished runs", extra={"count": released})
                services.cancel_scope.cancel()

    async def _claim_loop(self, workers: trio.Nursery) -> None:
        engine = self.engine
        settings = engine.settings
        while not self.drain.is_set():
            capacity = settings.workers - self.executing
            if capacity <= 0:
                self._slot_free = trio.Event()
                with trio.move_on_after(settings.poll_s):
                    await self._slot_free.wait()
                continue
            want = min(capacity, settings.claim_batch)
            try:
                claimed, next_due = await engine.claim(want)
            except DatabaseError as exc:
                log.warning("claim failed; retrying", extra={"error": str(exc)})
                await self._wait_for_work(None)
                continue
            self.claims += 1
            for run in claimed:
                self.executing += 1
                self.started += 1
                workers.start_soon(self._execute, run)
            if len(claimed) < want:
                await self._wait_for_work(next_due)

    async def _wait_for_work(self, next_due: float | None) -> None:
        engine = self.engine
        delay = engine.settings.poll_s
        if next_due is not None:
            # +1 ms: the database keeps microseconds, so never wake a hair too early and spin.
            delay = min(delay, max(0.0, next_due - engine.clock.now()) + 0.001)
        with trio.move_on_after(delay):
            await self.wake.receive()
        while True:  # coalesce queued wake-ups
            try:
                self.wake.receive_nowait()
            except trio.WouldBlock:
                break

    async def _wake_on_drain(self) -> None:
        await self.drain.wait()
        self.engine.wake()
        self._slot_free.set()

    async def _complete(self, run: ClaimedRun, transition: Transition) -> None:
        """Write how the run ended. A write that fails for a reason that may pass is
        retried while this engine holds the run's lease, so a run that succeeded is not
        rescued, run again, or failed (without its on_failure) for a deadlock. Otherwise
        the run keeps its lease until it expires; then any replica retries it."""
        engine = self.engine
        for attempt in range(1, COMPLETE_ATTEMPTS + 1):
            try:
                await engine.complete(transition)
                return
            except DatabaseError as exc:
                retry = isinstance(exc, DatabaseUnavailable | TransactionConflict)
                if not retry or attempt == COMPLETE_ATTEMPTS or not engine.holds(run.id):
                    log.error(
                        "could not record a run's outcome",
                        extra={"run_id": str(run.id), "error": str(exc), "attempts": attempt},
                    )
                    return
                self.completion_retries += 1
                log.warning(
                    "could not record a run's outcome; retrying",
                    extra={"run_id": str(run.id), "error": str(exc), "attempt": attempt},
                )
                await trio.sleep(COMPLETE_BACKOFF.delay(attempt, engine.rng))

    async def _execute(self, run: ClaimedRun) -> None:
        engine = self.engine
        executing = True
        try:
            transition = await engine.execute(run)
            # The worker slot is free once the function returned; writing the outcome
            # (batched with others) no longer holds it.
            executing = False
            self.executing -= 1
            self._slot_free.set()
            if transition is not None:
                await self._complete(run, transition)
        except BaseException:
            self.abandoned.append(run)  # cancelled (shutdown): give it back
            raise
        finally:
            if executing:
                self.executing -= 1
                self._slot_free.set()
            engine.finish(run.id)
            self.finished += 1
