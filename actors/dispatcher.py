"""The dispatcher: claims due runs in batches and runs them in a bounded worker nursery.

Wake-ups come from in-process sends (a memory channel), from other processes
(LISTEN/NOTIFY) and from the earliest future `run_at` it learnt while claiming;
polling every `poll_s` is the safety net. Leases of runs in flight are renewed;
runs of workers that died are re-queued (any replica does it). On drain it stops
claiming, lets runs in flight finish, and gives back whatever it could not finish.
"""

from __future__ import annotations

import functools
import logging
import uuid
from typing import Any

import trio

from deneva.engine import store
from deneva.engine.engine import Engine
from deneva.engine.executor import execute
from deneva.engine.model import ClaimedRun
from deneva.errors import DatabaseError

log = logging.getLogger("deneva.dispatcher")


class Dispatcher:
    name = "dispatcher"
    drains = True

    def __init__(self, engine: Engine, drain: trio.Event) -> None:
        self.engine = engine
        self.drain = drain
        self.in_flight: set[uuid.UUID] = set()  # claimed by us: leases to renew
        self.executing = 0  # functions running now: what the worker limit bounds
        self.abandoned: set[uuid.UUID] = set()
        self._slot_free = trio.Event()
        self.started = 0
        self.finished = 0

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        engine = self.engine
        async with trio.open_nursery() as services:
            await services.start(engine.step_writer.run)
            await services.start(engine.completion_writer.run)
            services.start_soon(self._listen)
            services.start_soon(self._leases)
            services.start_soon(self._wake_on_drain)
            try:
                async with trio.open_nursery() as workers:
                    task_status.started()
                    await self._claim_loop(workers)
                # Drained: what finished is being written; flush and stop.
                await engine.step_writer.flush_pending()
                await engine.completion_writer.flush_pending()
            finally:
                unfinished = list(self.in_flight | self.abandoned)
                if unfinished:
                    with trio.CancelScope(shield=True), trio.move_on_after(5):
                        await self._release(unfinished)
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
            for run in claimed:
                self.in_flight.add(run.id)
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
            await engine.wake_receive.receive()
        while True:  # coalesce queued wake-ups
            try:
                engine.wake_receive.receive_nowait()
            except trio.WouldBlock:
                break

    async def _wake_on_drain(self) -> None:
        await self.drain.wait()
        self.engine.wake()
        self._slot_free.set()

    async def _execute(self, run: ClaimedRun) -> None:
        executing = True
        try:
            transition = await execute(self.engine, run)
            # The worker slot is free once the function returned; writing the outcome
            # (batched with others) no longer holds it.
            executing = False
            self.executing -= 1
            self._slot_free.set()
            if transition is not None:
                await self.engine.complete(transition)
        except DatabaseError as exc:
            # The run keeps its lease; it is retried after the lease expires.
            log.error("could not record a run's outcome", extra={"run_id": str(run.id), "error": str(exc)})
        except BaseException:
            self.abandoned.add(run.id)  # cancelled (shutdown): give it back
            raise
        finally:
            if executing:
                self.executing -= 1
                self._slot_free.set()
            self.in_flight.discard(run.id)
            self.finished += 1

    async def _release(self, run_ids: list[uuid.UUID]) -> None:
        now = self.engine.clock.now()
        released = await self.engine.db.run(
            lambda conn: store.release_runs(conn, self.engine.owner, run_ids, now)
        )
        log.info("released unfinished runs", extra={"count": released})

    async def _listen(self) -> None:
        # Our own NOTIFYs are skipped: the engine wakes the dispatcher directly.
        async with self.engine.db.listen(store.NOTIFY_CHANNEL, skip_own=True) as notes:
            async for _ in notes:
                self.engine.wake()

    async def _leases(self) -> None:
        engine = self.engine
        settings = engine.settings
        next_rescue = engine.clock.now()
        while True:
            await trio.sleep(settings.lease_s / 3)
            now = engine.clock.now()
            try:
                if self.in_flight:
                    cancels = await engine.db.run(
                        functools.partial(
                            store.renew_leases,
                            owner=engine.owner,
                            run_ids=list(self.in_flight),
                            until=now + settings.lease_s,
                        )
                    )
                    engine.cancel_requested |= cancels
                if now >= next_rescue:
                    next_rescue = now + settings.rescue_every_s
                    rescued = await engine.db.run(functools.partial(store.rescue_orphans, now=now))
                    if rescued:
                        engine.wake()
                        log.warning(
                            "re-queued runs of a worker that stopped renewing", extra={"count": rescued}
                        )
            except DatabaseError as exc:
                log.warning("lease upkeep failed", extra={"error": str(exc)})
