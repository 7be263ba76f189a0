"""The dispatcher: claims due runs in batches and runs them in a bounded worker nursery.

Wake-ups arrive on its channel (from this process's engine, and from other replicas
through the listener), and from the earliest future `run_at` it learnt while claiming;
polling every `poll_s` is the safety net. On drain it stops claiming, lets runs in
flight finish, and gives back whatever it could not finish. It talks to the engine
only through the engine's API; leases are the lifeline's business.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import trio

from deneva.backoff import Backoff
from deneva.engine.engine import Engine, Running
from deneva.engine.model import ClaimedRun, Transition
from deneva.errors import DatabaseError, DatabaseUnavailable, TransactionConflict

log = logging.getLogger("deneva.dispatcher")

# Writing an outcome that failed for a reason that may pass (a deadlock, a lost
# connection) is retried while the run's lease is held: about 30 s in all, within which
# the lifeline keeps renewing it.
COMPLETE_ATTEMPTS = 10
COMPLETE_BACKOFF = Backoff(base_s=0.1, factor=2.0, max_s=10.0)
# Runs started one after another in one task (`_execute_together`) hold the trio loop
# between checkpoints; after this long the rest of the batch goes on in a new task, so
# other tasks (HTTP requests, lease upkeep) run in between.
TOGETHER_SLICE_S = 0.002


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
        self._workers: trio.Nursery

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine
        async with trio.open_nursery() as services:
            await services.start(engine.run_writers)
            services.start_soon(self._wake_on_drain)
            try:
                async with trio.open_nursery() as workers:
                    self._workers = workers
                    task_status.started()
                    await self._claim_loop()
                # Drained: what finished is being written; flush and stop.
                await engine.flush()
            finally:
                unfinished = list(self.abandoned)
                if unfinished:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        released = await engine.release(unfinished)
                        log.info("released unfinished runs", extra={"count": released})
                services.cancel_scope.cancel()

    async def _claim_loop(self) -> None:
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
            self.executing += len(claimed)
            self.started += len(claimed)
            self._spawn(claimed, [])
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

    async def _complete(self, ended: list[tuple[ClaimedRun, Transition]]) -> None:
        """Write how runs ended (one group for the group commit). A write that fails for a
        reason that may pass is retried for the runs whose lease this engine still holds,
        so a run that succeeded is not rescued, run again, or failed (without its
        on_failure) for a deadlock. Otherwise a run keeps its lease until it expires; then
        any replica retries it."""
        engine = self.engine
        for attempt in range(1, COMPLETE_ATTEMPTS + 1):
            try:
                await engine.complete_many([transition for _, transition in ended])
                return
            except DatabaseError as exc:
                retry = attempt < COMPLETE_ATTEMPTS and isinstance(
                    exc, DatabaseUnavailable | TransactionConflict
                )
                kept = [pair for pair in ended if retry and engine.holds(pair[0].id)]
                for run, _ in ended:
                    if not (kept and engine.holds(run.id)):
                        log.error(
                            "could not record a run's outcome",
                            extra={"run_id": str(run.id), "error": str(exc), "attempts": attempt},
                        )
                if not kept:
                    return
                ended = kept
                self.completion_retries += len(kept)
                log.warning(
                    "could not record runs' outcomes; retrying",
                    extra={
                        "runs": len(kept),
                        "run_id": str(kept[0][0].id),
                        "error": str(exc),
                        "attempt": attempt,
                    },
                )
                await trio.sleep(COMPLETE_BACKOFF.delay(attempt, engine.rng))

    def _spawn(self, runs: list[ClaimedRun], ended: list[tuple[ClaimedRun, Transition]]) -> None:
        """Tasks for claimed runs: one for each run of a function that suspends, and one
        for the others (and for `ended`, to be written), started one after another in it."""
        together: list[ClaimedRun] = []
        for run in runs:
            if self.engine.suspends(run.function_id):
                self._workers.start_soon(self._execute, run)
            else:
                together.append(run)
        if together or ended:
            self._workers.start_soon(self._execute_together, together, ended)

    def _returned(self, count: int = 1) -> None:
        """Functions returned: their worker slots are free (writing outcomes holds none)."""
        self.executing -= count
        self._slot_free.set()

    def _done(self, runs: list[ClaimedRun]) -> None:
        """This engine is done with these runs (their outcomes written, or not to be)."""
        for run in runs:
            self.engine.finish(run.id)
        self.finished += len(runs)

    async def _execute(self, run: ClaimedRun) -> None:
        """Execute a claimed run in this task (its own cancel scope), then write how it ended."""
        returned = False
        try:
            transition = await self.engine.execute(run)
            returned = True
            self._returned()
            if transition is not None:
                await self._complete([(run, transition)])
        except BaseException:
            self.abandoned.append(run)  # cancelled (shutdown): give it back
            raise
        finally:
            if not returned:
                self._returned()
            self._done([run])

    async def _execute_together(
        self, runs: list[ClaimedRun], ended: list[tuple[ClaimedRun, Transition]]
    ) -> None:
        """Start claimed runs one after another in this task, then write how they ended,
        with `ended` (what ended in the task that handed these on), as one group: a
        function that returns without suspending costs no task of its own. The first run
        that suspends keeps this task, and its cancel scope (which a lost lease cancels),
        to itself; the rest, and what has ended, go on in other tasks (`_spawn`)."""
        engine = self.engine
        index = 0  # runs[:index] have returned (or were not started: their lease was lost)
        running: Running | None = None
        deadline = time.perf_counter() + TOGETHER_SLICE_S
        try:
            with trio.CancelScope() as scope:
                while index < len(runs):
                    if index and time.perf_counter() > deadline:
                        # The slice is used up: the rest goes on in a task of its own.
                        self._workers.start_soon(self._execute_together, runs[index:], [])
                        runs, index = [], 0
                        break
                    run = runs[index]
                    started = engine.start(run, scope) if engine.holds(run.id) else None
                    if isinstance(started, Running):
                        running = started
                        break
                    index += 1
                    self.executing -= 1
                    if started is None:
                        self._done([run])
                    else:
                        ended.append((run, started))
                self._slot_free.set()
                if running is not None:
                    self._spawn(runs[index + 1 :], ended)
                    runs, index, ended = [], 0, []  # handed on: this task keeps `running` only
                    transition = await running.finish()
                    run, running = running.run, None
                    self._returned()
                    if transition is None:
                        self._done([run])
                    else:
                        ended.append((run, transition))
            if running is not None:  # its lease was lost (see Engine.start): write nothing
                engine.lost(running)
                run, running = running.run, None
                self._returned()
                self._done([run])
            if ended:
                await self._complete(ended)
                self._done([run for run, _ in ended])
        except BaseException:
            unfinished = runs[index:] + [run for run, _ in ended] + ([running.run] if running else [])
            self._returned(len(runs) - index + (1 if running else 0))
            self.abandoned.extend(unfinished)  # cancelled (shutdown): give them back
            self._done(unfinished)
            raise
