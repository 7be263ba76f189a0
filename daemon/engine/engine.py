"""The engine's API for the rest of the daemon: send events, invoke, inspect, steer.

It is what the HTTP layer, the CLI and other actors call; the dispatcher and the
scheduler (actors) do the running. Nothing here knows about ads or tenants.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from deneva.clock import Clock
from deneva.db import Connection, Database
from deneva.engine import store
from deneva.engine.batch import GroupCommit
from deneva.engine.context import LeaseLost, RunCancelled
from deneva.engine.errors import InvalidEvent, RunNotFound
from deneva.engine.events import MAX_BATCH, Event, new_event_id, parse_event
from deneva.engine.functions import INVOKE_EVENT, Function, Registry
from deneva.engine.model import ClaimedRun, RunRecord, SendResult, Transition

log = logging.getLogger("deneva.engine")


@attrs.frozen
class EngineSettings:
    workers: int = 256
    claim_batch: int = 500
    lease_s: float = 15.0
    poll_s: float = 1.0
    rescue_every_s: float = 5.0


class Engine:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        clock: Clock,
        owner: str,
        settings: EngineSettings | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        self.owner = owner
        self.settings = settings or EngineSettings()
        self.rng = random.Random()
        # In-process wake-ups for the dispatcher (LISTEN/NOTIFY covers other processes).
        self.wake_send, self.wake_receive = trio.open_memory_channel[None](1)
        self.cancel_requested: set[uuid.UUID] = set()
        self.step_writer: GroupCommit[tuple[uuid.UUID, str, Any], tuple[bool, bool]] = GroupCommit(
            "step", self._flush_steps
        )
        self.completion_writer: GroupCommit[Transition, str | None] = GroupCommit(
            "completion", self._flush_completions
        )
        self._finished: dict[uuid.UUID, trio.Event] = {}

    # -- sending -------------------------------------------------------------------------

    def wake(self) -> None:
        try:
            self.wake_send.send_nowait(None)
        except trio.WouldBlock:
            pass

    def parse_events(self, raw: Any) -> list[Event]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise InvalidEvent("no events given")
        if len(items) > MAX_BATCH:
            raise InvalidEvent(f"{len(items)} events in one batch, over the limit of {MAX_BATCH}")
        now = self.clock.now()
        where = "event" if not isinstance(raw, list) else "events[{}]"
        return [parse_event(item, now, where.format(i)) for i, item in enumerate(items)]

    async def send(self, raw: Any) -> SendResult:
        """Store events and start what they trigger; duplicate ids are no-ops."""
        events = self.parse_events(raw)
        return await self.send_events(events)

    async def send_events(self, events: Sequence[Event]) -> SendResult:
        now = self.clock.now()
        result = await self.db.run(lambda conn: store.send_events(conn, self.registry, events, now))
        for error in result.errors:
            log.warning("event did not start a run", extra={"error": error})
        if result.run_ids or result.resumed_run_ids:
            self.wake()
        return result

    async def invoke(self, function_id: str, data: Mapping[str, Any] | None = None) -> uuid.UUID:
        """Run a function now, whatever its triggers (CLI `invoke`, admin)."""
        function = self.registry.get(function_id)
        now = self.clock.now()
        event = parse_event({"name": INVOKE_EVENT, "data": dict(data or {})}, now)
        return await self.start_run(function, event)

    async def start_run(self, function: Function, event: Event, run_at: float | None = None) -> uuid.UUID:
        now = self.clock.now()
        run = store.plan_run(function, event.document(), now, run_at)

        async def insert(conn: Connection) -> list[uuid.UUID]:
            async with conn.transaction():
                return await store.insert_runs(conn, [run], now)

        ids = await self.db.run(insert)
        self.wake()
        return ids[0] if ids else run.id

    # -- the dispatcher's side -------------------------------------------------------------

    async def claim(self, limit: int) -> tuple[list[ClaimedRun], float | None]:
        now = self.clock.now()
        # A run with a concurrency key belongs to a function every replica registers:
        # with none registered here, no such runs exist and that query is skipped.
        limited = self.registry.has_concurrency_limits
        return await self.db.run(
            lambda conn: store.claim_runs(conn, self.owner, now, self.settings.lease_s, limit, limited)
        )

    async def _flush_steps(self, items: Sequence[tuple[uuid.UUID, str, Any]]) -> list[tuple[bool, bool]]:
        now = self.clock.now()
        flags = await self.db.transaction(lambda conn: store.record_steps(conn, self.owner, items, now))
        return [flags.get(item[0], (False, False)) for item in items]

    async def _record_step(self, run_id: uuid.UUID, step_id: str, value: Any) -> None:
        cancel, owned = await self.step_writer.submit((run_id, step_id, value))
        if not owned:
            raise LeaseLost()
        if cancel or run_id in self.cancel_requested:
            raise RunCancelled()

    async def _send_as_step(self, run_id: uuid.UUID, step_id: str, raw: list[Mapping[str, Any]]) -> list[str]:
        events = self.parse_events(list(raw))
        now = self.clock.now()

        async def send_and_record(conn: Connection) -> tuple[SendResult, tuple[bool, bool]]:
            async with conn.transaction():
                result = await store.send_events(conn, self.registry, events, now)
                flags = await store.record_steps(
                    conn, self.owner, [(run_id, step_id, list(result.event_ids))], now
                )
                return result, flags.get(run_id, (False, False))

        result, (cancel, owned) = await self.db.run(send_and_record)
        if result.run_ids or result.resumed_run_ids:
            self.wake()
        if not owned:
            raise LeaseLost()
        if cancel:
            raise RunCancelled()
        return list(result.event_ids)

    async def _resolve_wait_timeout(self, run_id: uuid.UUID, step_id: str) -> dict[str, Any] | None:
        now = self.clock.now()
        stored: dict[str, Any] | None = await self.db.run(
            lambda conn: store.resolve_wait_timeout(conn, run_id, step_id, now)
        )
        return stored

    async def _flush_completions(self, transitions: Sequence[Transition]) -> list[str | None]:
        now = self.clock.now()
        final = await self.db.run(
            lambda conn: store.complete_runs(conn, self.registry, self.owner, transitions, now)
        )
        # A run that ends or pauses also frees its concurrency slot: runs of the same key
        # queued behind it are claimable now, not at the next poll.
        if (self.registry.has_concurrency_limits and final) or any(
            status in ("queued", "sleeping") for status in final.values()
        ):
            self.wake()
        for run_id, status in final.items():
            if status in ("succeeded", "failed", "cancelled") and run_id in self._finished:
                self._finished.pop(run_id).set()
        return [final.get(t.run_id) for t in transitions]

    async def complete(self, transition: Transition) -> str | None:
        return await self.completion_writer.submit(transition)

    # -- inspecting and steering -------------------------------------------------------------

    async def get_run(self, run_id: uuid.UUID) -> RunRecord:
        record = await self.db.run(lambda conn: store.get_run(conn, run_id))
        if record is None:
            raise RunNotFound(f"no run with id {run_id}")
        return record

    async def list_runs(
        self, status: str | None = None, function_id: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        return await self.db.run(lambda conn: store.list_runs(conn, status, function_id, limit))

    async def cancel(self, run_id: uuid.UUID) -> str:
        now = self.clock.now()
        result = await self.db.run(lambda conn: store.cancel_run(conn, run_id, now))
        if result is None:
            raise RunNotFound(f"no run with id {run_id}")
        self.cancel_requested.add(run_id)
        return result

    async def retry(self, run_id: uuid.UUID) -> str:
        now = self.clock.now()
        result = await self.db.run(lambda conn: store.retry_run(conn, run_id, now))
        if result is None:
            raise RunNotFound(f"no run with id {run_id}")
        self.wake()
        return result

    async def wait_for_run(self, run_id: uuid.UUID, timeout_s: float, poll_s: float = 0.1) -> RunRecord:
        """Wait until the run finishes or `timeout_s` passes; returns its latest record.

        A run finished in this process wakes the waiter at once; one finished by another
        replica is seen by polling, 0.1 s at first, backing off to 5 s.
        """
        finished = self._finished.setdefault(run_id, trio.Event())
        with trio.move_on_after(timeout_s):
            while True:
                record = await self.get_run(run_id)
                if record.status in ("succeeded", "failed", "cancelled"):
                    self._finished.pop(run_id, None)
                    return record
                with trio.move_on_after(poll_s):
                    await finished.wait()
                poll_s = min(poll_s * 2, 5.0)
        self._finished.pop(run_id, None)
        return await self.get_run(run_id)

    def new_event(self, name: str, data: Mapping[str, Any] | None = None) -> Event:
        return Event(name, dict(data or {}), new_event_id(), self.clock.now())
