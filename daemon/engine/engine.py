"""The engine's face: the one API the rest of the daemon uses. Nothing outside the
engine touches its storage.

- Senders (HTTP, CLI, functions, the token-refresh actor): `send`, `invoke`, `start_run`.
- The dispatcher: `claim`, `execute`, `complete`, `finish`, `release`, `run_writers`.
- The lifeline: `renew_leases`, `rescue_orphans`.
- Schedulers (the scheduler and janitor actors): `fire_ticks`, `last_ticks`.
- Operators: `pause`/`resume`/`paused` (every replica obeys at once), `get_run`,
  `get_steps`, `list_runs`, `find_runs` (a filter, a page at a time), `cancel`, `retry`,
  `retry_matching`, `cancel_matching` (bounded, one statement each), `wait_for_run`,
  `queue_stats`, `finished_per_bucket`. Each action takes an optional `audit`: a write
  made in the same transaction, given what the action did (the caller's audit row), so
  an action and its record commit together, in one crossing.
- The janitor's passes: `prune_runs`, `prune_table`.

The engine knows nothing of ads, tenants or MCP. It holds the send end of the
dispatcher's wake-up channel (made by the daemon's wiring), so whatever makes work due
in this process wakes the dispatcher at once; other processes are heard through
LISTEN/NOTIFY by the listener actor.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

import attrs
import trio

from deneva.backoff import Backoff
from deneva.clock import Clock, as_datetime
from deneva.db import Connection, Database
from deneva.engine import eager, store
from deneva.engine.batch import GroupCommit
from deneva.engine.context import LeaseLost, RunCancelled, SentEvents
from deneva.engine.errors import EngineError, InvalidEvent, RunNotFound, UnknownFunction
from deneva.engine.events import MAX_BATCH, Event, new_event_id, parse_event
from deneva.engine.executor import Execution, execute, unknown_function
from deneva.engine.functions import CRON_EVENT, INVOKE_EVENT, CronTrigger, Function, Registry
from deneva.engine.model import (
    CancelledRuns,
    ClaimedRun,
    Delivery,
    FinishedBucket,
    NewRun,
    PauseRecord,
    QueueStats,
    RunCursor,
    RunFilter,
    RunRecord,
    SendResult,
    StepRecord,
    Transition,
)
from deneva.engine.telemetry import RunObserver
from deneva.engine.ticks import FiredTicks, Tick

log = logging.getLogger("deneva.engine")

NOTIFY_CHANNEL = store.NOTIFY_CHANNEL
PAUSED_CHANNEL = store.PAUSED_CHANNEL
ENGINE = store.ENGINE
PRUNABLE_STATUSES = store.PRUNABLE_STATUSES
PRUNABLE_TABLES = store.PRUNABLE_TABLES
MAX_MATCHING = 1000  # runs one retry_matching / cancel_matching changes at most
T = TypeVar("T")
# A write made in the same transaction as an operator's action, given what it returned.
Audit = Callable[[Connection, Any], Awaitable[None]]


@attrs.frozen
class EngineSettings:
    workers: int = 256
    claim_batch: int = 500
    lease_s: float = 15.0
    poll_s: float = 1.0
    rescue_every_s: float = 5.0
    # Leases end on the database's clock ("database": every replica agrees, whatever its
    # own clock says) or on the engine's ("host": for virtual time in tests).
    lease_clock: Literal["database", "host"] = "database"


class Running:
    """A run whose function suspended while starting (`Engine.start`): `finish` runs it on
    to its end, in the task that started it."""

    __slots__ = ("_engine", "_suspended", "began", "run")

    def __init__(
        self, engine: Engine, run: ClaimedRun, began: float, suspended: eager.Suspended[Execution]
    ) -> None:
        self._engine = engine
        self.run = run
        self.began = began
        self._suspended = suspended

    def seconds(self) -> float:
        return time.perf_counter() - self.began

    async def finish(self) -> Transition | None:
        """The transition to `complete`; raises trio.Cancelled if the lease was lost."""
        engine = self._engine
        try:
            execution = await self._suspended
        finally:
            engine._executing.pop(self.run.id, None)
        engine.observer.execution_ended(self.run, execution, self.seconds())
        return execution.transition


class Engine:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        clock: Clock,
        owner: str,
        settings: EngineSettings | None = None,
        *,
        wake: trio.MemorySendChannel[None] | None = None,
        observer: RunObserver | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.clock = clock
        self.owner = owner
        self.settings = settings or EngineSettings()
        self.observer = observer or RunObserver()
        self.rng = random.Random()
        self._wake = wake
        # Runs this engine claimed and still works on, with their lease tokens.
        self.held: dict[uuid.UUID, uuid.UUID] = {}
        self._executing: dict[uuid.UUID, trio.CancelScope] = {}  # cancelled if the lease is lost
        self._suspending: set[str] = set()  # functions whose runs suspended while starting
        self.leases_lost = 0
        self._key_cursor = ""  # where the next claim starts among the concurrency keys
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
        """Tell this process's dispatcher that work may be due (coalesced)."""
        if self._wake is None:
            return
        try:
            self._wake.send_nowait(None)
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # a wake-up is pending already, or no dispatcher listens

    def parse_events(self, raw: Any) -> list[Event]:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise InvalidEvent("no events given")
        if len(items) > MAX_BATCH:
            raise InvalidEvent(f"{len(items)} events in one batch, over the limit of {MAX_BATCH}")
        now = self.clock.now()
        where = "event" if not isinstance(raw, list) else "events[{}]"
        return [parse_event(item, now, where.format(i)) for i, item in enumerate(items)]

    async def send(
        self,
        raw: Any,
        *,
        strict: bool = False,
        delivery: Delivery | None = None,
        audit: Audit | None = None,
    ) -> SendResult:
        """Store events and start what they trigger; duplicate ids are no-ops. `strict`
        (events from outside, `/api/events`): an event that cannot start a run it triggers
        (a key field missing) is refused, InvalidEvent naming the field, and nothing of
        the batch is stored; otherwise such runs are skipped and named in `errors`.
        `delivery` (an inbound webhook): the batch is stored once per delivery, in one
        transaction with its record; a delivery stored before stores nothing (`duplicate`)."""
        events = self.parse_events(raw)
        if strict:
            _runs, errors = store.plan_for_events(
                self.registry, [e.document() for e in events], self.clock.now()
            )
            if errors:
                raise InvalidEvent("; ".join(dict.fromkeys(errors)))
        return await self.send_events(events, delivery, audit=audit)

    async def send_events(
        self, events: Sequence[Event], delivery: Delivery | None = None, *, audit: Audit | None = None
    ) -> SendResult:
        now = self.clock.now()
        result = await self._audited(
            lambda conn: store.send_events(conn, self.registry, events, now, delivery), audit
        )
        if result.run_ids or result.resumed_run_ids:
            self.wake()
        return result

    async def invoke(
        self, function_id: str, data: Mapping[str, Any] | None = None, *, audit: Audit | None = None
    ) -> uuid.UUID:
        """Run a function now, whatever its triggers (CLI `invoke`, the console); `audit`
        gets the run's id."""
        function = self.registry.get(function_id)
        event = parse_event({"name": INVOKE_EVENT, "data": dict(data or {})}, self.clock.now())
        return await self.start_run(function, event, audit=audit)

    async def start_run(
        self, function: Function, event: Event, run_at: float | None = None, *, audit: Audit | None = None
    ) -> uuid.UUID:
        now = self.clock.now()
        run = store.plan_run(function, event.document(), now, run_at)

        async def insert(conn: Connection) -> uuid.UUID:
            async with conn.transaction():
                ids = await store.insert_runs(conn, [run], now)
                run_id = ids[0] if ids else run.id
                if audit is not None:
                    await audit(conn, run_id)
                return run_id

        run_id = await self.db.run(insert)
        self.wake()
        return run_id

    async def _audited(self, work: Callable[[Connection], Awaitable[T]], audit: Audit | None) -> T:
        """`work(conn)` in one crossing; with `audit`, it and `audit(conn, result)` in one
        transaction (an error in either writes neither)."""
        if audit is None:
            return await self.db.run(work)

        async def both(conn: Connection) -> T:
            async with conn.transaction():
                result = await work(conn)
                await audit(conn, result)
                return result

        return await self.db.run(both)

    def new_event(self, name: str, data: Mapping[str, Any] | None = None) -> Event:
        return Event(name, dict(data or {}), new_event_id(), self.clock.now())

    # -- the dispatcher's side -------------------------------------------------------------

    async def run_writers(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The group-commit loops for steps and outcomes; whoever executes runs starts them."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.step_writer.run)
            await nursery.start(self.completion_writer.run)
            task_status.started()

    async def flush(self) -> None:
        """Write what is waiting in the group-commit buffers now (drain)."""
        await self.step_writer.flush_pending()
        await self.completion_writer.flush_pending()

    async def claim(self, limit: int) -> tuple[list[ClaimedRun], float | None]:
        """Claim up to `limit` due runs (leased to this engine); also when the next falls due
        (None after a full claim: more may be due already)."""
        now = self.clock.now()
        # A run with a concurrency key belongs to a function every replica registers:
        # with none registered here, no such runs exist and that query is skipped.
        limited = self.registry.has_concurrency_limits
        cursor = self._key_cursor
        lease_s, until = self.settings.lease_s, self._lease_until(now)
        claimed, next_due, self._key_cursor = await self.db.run(
            lambda conn: store.claim_runs(conn, self.owner, now, lease_s, limit, limited, cursor, until)
        )
        self.held.update((run.id, run.lease) for run in claimed if run.lease is not None)
        return claimed, next_due

    def _lease_until(self, now: float) -> float | None:
        """When a lease taken or renewed now ends on the engine's clock; None: the
        database's clock decides (`lease_clock`)."""
        return now + self.settings.lease_s if self.settings.lease_clock == "host" else None

    def _begin(self, run: ClaimedRun) -> tuple[Coroutine[Any, Any, Execution], float] | Transition:
        """The coroutine that executes a claimed run, and when it began (reported to the
        observer); the failed transition of a run whose function is unknown here."""
        try:
            function = self.registry.get(run.function_id)
        except UnknownFunction as exc:
            execution = Execution(unknown_function(run, str(exc), self.clock.now()), exc)
            self.observer.execution_ended(run, execution, 0.0)
            assert execution.transition is not None
            return execution.transition
        self.observer.execution_started(run)
        return execute(run, function, self, self.clock, self.rng), time.perf_counter()

    async def execute(self, run: ClaimedRun) -> Transition | None:
        """Run a claimed run's function once, in a cancel scope of its own (which a lost
        lease cancels); the transition to `complete` (None: the lease was lost, write
        nothing). Reports to the observer, the one instrumentation point."""
        begun = self._begin(run)
        if not isinstance(begun, tuple):
            return begun
        coro, began = begun
        with trio.CancelScope() as scope:
            self._executing[run.id] = scope
            try:
                execution = await coro
            finally:
                self._executing.pop(run.id, None)
        if scope.cancelled_caught:  # the lease was lost (see renew_leases): write nothing
            execution = Execution(None, LeaseLost())
        self.observer.execution_ended(run, execution, time.perf_counter() - began)
        return execution.transition

    def start(self, run: ClaimedRun, scope: trio.CancelScope) -> Transition | Running | None:
        """Start a claimed run's function in the calling task (see `deneva.engine.eager`).
        One that returns without suspending has ended here: its transition to `complete`
        (None: write nothing). One that suspends comes back `Running`, to be finished in
        this task under `scope`, which a lost lease then cancels (see `lost`); its function
        is then one that `suspends`."""
        begun = self._begin(run)
        if not isinstance(begun, tuple):
            return begun
        coro, began = begun
        started = eager.start(coro)
        if isinstance(started, eager.Suspended):
            self._suspending.add(run.function_id)
            self._executing[run.id] = scope
            return Running(self, run, began, started)
        execution = started.unwrap()
        self.observer.execution_ended(run, execution, time.perf_counter() - began)
        return execution.transition

    def suspends(self, function_id: str) -> bool:
        """Whether a run of `function_id` has suspended while starting (waited for a step
        to be written, for a lock or for I/O): such runs are better `execute`d in a task of
        their own than `start`ed one after another in a shared one."""
        return function_id in self._suspending

    def lost(self, running: Running) -> None:
        """`running`'s scope was cancelled: its lease was lost, and nothing is written."""
        self.observer.execution_ended(running.run, Execution(None, LeaseLost()), running.seconds())

    async def complete(self, transition: Transition) -> str | None:
        """Write how a run's execution ended (batched with others); its final status."""
        return await self.completion_writer.submit(transition)

    async def complete_many(self, transitions: Sequence[Transition]) -> list[str | None]:
        """`complete` for several runs at once (one group in the batch)."""
        return await self.completion_writer.submit_many(transitions)

    def holds(self, run_id: uuid.UUID) -> bool:
        """Whether this engine holds the run's lease (claimed, not finished, not lost)."""
        return run_id in self.held

    def finish(self, run_id: uuid.UUID) -> None:
        """This engine is done with a claimed run: its lease is no longer renewed."""
        self.held.pop(run_id, None)
        self.cancel_requested.discard(run_id)

    def _lose(self, run_ids: set[uuid.UUID]) -> None:
        """Leases another worker holds now (ours expired and the run was rescued): the
        run's local work is cancelled, and nothing more is written for it."""
        for run_id in run_ids:
            self.held.pop(run_id, None)
            scope = self._executing.get(run_id)
            if scope is not None:
                self.leases_lost += 1
                log.warning("lease lost; the run's local work is cancelled", extra={"run_id": str(run_id)})
                scope.cancel()

    async def release(self, runs: Sequence[ClaimedRun]) -> int:
        """Give back claimed runs that were not finished (shutdown): resumable at once."""
        now = self.clock.now()
        leases = [(run.id, run.lease) for run in runs if run.lease is not None]
        for run in runs:
            self.finish(run.id)
        return await self.db.run(lambda conn: store.release_runs(conn, leases, now))

    # -- the step journal (what running functions call; see context.StepJournal) ------------

    async def _flush_steps(self, items: Sequence[tuple[uuid.UUID, str, Any]]) -> list[tuple[bool, bool]]:
        now = self.clock.now()
        fenced = [(run_id, step_id, value, self.held.get(run_id)) for run_id, step_id, value in items]
        flags = await self.db.transaction(lambda conn: store.record_steps(conn, fenced, now))
        return [flags.get(item[0], (False, False)) for item in items]

    async def record_step(self, run_id: uuid.UUID, step_id: str, value: Any) -> None:
        cancel, owned = await self.step_writer.submit((run_id, step_id, value))
        if not owned:
            raise LeaseLost()
        if cancel or run_id in self.cancel_requested:
            raise RunCancelled()

    async def send_as_step(self, run_id: uuid.UUID, step_id: str, raw: list[Mapping[str, Any]]) -> SentEvents:
        events = self.parse_events(list(raw))
        now = self.clock.now()

        token = self.held.get(run_id)

        async def send_and_record(conn: Connection) -> tuple[SentEvents, tuple[bool, bool]]:
            async with conn.transaction():
                # Fenced first: a worker that lost the run's lease sends nothing.
                owned = await store.lock_leased(conn, [(run_id, token)])
                if run_id not in owned:
                    return SentEvents((), ()), (False, False)
                result = await store.send_events(conn, self.registry, events, now)
                sent = SentEvents(result.event_ids, result.errors)
                flags = await store.record_steps(conn, [(run_id, step_id, sent.memo(), token)], now)
                return sent, flags.get(run_id, (False, False))

        sent, (cancel, owned) = await self.db.run(send_and_record)
        self.wake()
        if not owned:
            raise LeaseLost()
        if cancel:
            raise RunCancelled()
        return sent

    async def is_paused(self, function_id: str) -> bool:
        paused = {p.function_id for p in await self.paused()}
        return ENGINE in paused or function_id in paused

    async def resolve_wait_timeout(self, run_id: uuid.UUID, step_id: str) -> dict[str, Any] | None:
        now = self.clock.now()
        token = self.held.get(run_id)
        owned, stored = await self.db.run(
            lambda conn: store.resolve_wait_timeout(conn, run_id, token, step_id, now)
        )
        if not owned:
            raise LeaseLost()
        return cast("dict[str, Any] | None", stored)

    def step_finished(self, function_id: str, step_id: str, seconds: float) -> None:
        self.observer.step_finished(function_id, step_id, seconds)

    async def _flush_completions(self, transitions: Sequence[Transition]) -> list[str | None]:
        now = self.clock.now()
        tokens = [self.held.get(t.run_id) for t in transitions]
        final = await self.db.run(
            lambda conn: store.complete_runs(conn, self.registry, transitions, tokens, now)
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

    # -- the lifeline's side ----------------------------------------------------------------

    async def renew_leases(self) -> int:
        """Extend the leases of every run this engine holds; learns of cancellations."""
        held = list(self.held.items())
        if not held:
            return 0
        until, lease_s = self._lease_until(self.clock.now()), self.settings.lease_s
        cancels, lost = await self.db.run_dedicated(
            lambda conn: store.renew_leases(conn, held, until, lease_s)
        )
        self.cancel_requested |= cancels & self.held.keys()
        self._lose(lost)
        return len(held)

    async def rescue_orphans(self) -> int:
        """Re-queue runs whose owner (any replica) stopped renewing its lease."""
        now = self.clock.now()
        before = now if self.settings.lease_clock == "host" else None
        rescued = await self.db.run_dedicated(
            lambda conn: store.rescue_orphans(conn, self.registry, now, before)
        )
        if rescued:
            self.observer.orphans_rescued(rescued)
            self.wake()
        return rescued

    # -- schedulers' side -------------------------------------------------------------------

    def cron_entries(self) -> list[tuple[Function, CronTrigger]]:
        return self.registry.crons()

    def _cron_event(self, tick: Tick) -> Event:
        return Event(
            CRON_EVENT,
            {
                "function_id": tick.function.id,
                "cron": str(tick.trigger.expression),
                "tick": as_datetime(tick.at).isoformat(),
            },
            f"cron:{tick.function.id}:{int(tick.at * 1000)}",
            tick.at,
        )

    async def fire_ticks(self, ticks: Sequence[Tick]) -> FiredTicks:
        """Start a run for each tick no scheduler recorded before (exactly once across
        replicas) whose function is not paused; says what is paused now."""
        now = self.clock.now()
        pairs = [(t.function.id, t.at) for t in ticks]
        runs: list[NewRun] = [store.plan_run(t.function, self._cron_event(t).document(), now) for t in ticks]
        fired, paused = await self.db.run(lambda conn: store.fire_ticks(conn, pairs, runs, now))
        if fired:
            self.wake()
        return FiredTicks(tuple(fired), frozenset(paused))

    async def last_ticks(self, function_ids: Sequence[str]) -> dict[str, float]:
        return await self.db.run(lambda conn: store.last_ticks(conn, list(function_ids)))

    # -- the rollback lever (seed 003) --------------------------------------------------------

    def _pause_target(self, function_id: str | None) -> str:
        if function_id is None:
            return ENGINE
        self.registry.get(function_id)  # UnknownFunction names it
        return function_id

    async def pause(
        self, function_id: str | None, by: str | None = None, *, audit: Audit | None = None
    ) -> None:
        """Stop starting runs of `function_id` (None: of every function), on every replica.
        Its runs stay queued and its cron ticks are held back; running ones finish."""
        target = self._pause_target(function_id)
        now = self.clock.now()
        await self._audited(lambda conn: store.pause(conn, target, now, by), audit)

    async def resume(self, function_id: str | None, *, audit: Audit | None = None) -> bool:
        """Undo `pause`; False if it was not paused. Its cron ticks then follow their
        missed-tick policy."""
        target = self._pause_target(function_id)
        resumed = await self._audited(lambda conn: store.resume(conn, target), audit)
        if resumed:
            self.wake()
        return resumed

    async def paused(self) -> list[PauseRecord]:
        return await self.db.run(store.paused)

    # -- retention (the janitor's passes) ------------------------------------------------------

    async def prune_runs(self, status: str, before: float, limit: int) -> tuple[int, int]:
        """Delete up to `limit` finished runs of `status` (with their steps) older than
        `before`, in one bounded statement; (runs, steps) deleted."""
        if status not in PRUNABLE_STATUSES:
            raise EngineError(f"status {status!r}: only {', '.join(PRUNABLE_STATUSES)} runs are pruned")
        cutoff = as_datetime(before)
        return await self.db.run(lambda conn: store.prune_runs(conn, status, cutoff, limit))

    async def prune_table(self, table: str, before: float, limit: int) -> int:
        """Delete up to `limit` rows of one of the engine's bookkeeping tables
        (PRUNABLE_TABLES) older than `before` (a function's latest cron tick stays)."""
        if table not in PRUNABLE_TABLES:
            raise EngineError(f"table {table!r}: one of {', '.join(PRUNABLE_TABLES)}")
        cutoff = as_datetime(before)
        return await self.db.run(lambda conn: store.prune_table(conn, table, cutoff, limit))

    # -- inspecting and steering -------------------------------------------------------------

    async def get_run(self, run_id: uuid.UUID) -> RunRecord:
        record = await self.db.run(lambda conn: store.get_run(conn, run_id))
        if record is None:
            raise RunNotFound(f"no run with id {run_id}")
        return record

    async def get_runs(self, run_ids: Sequence[uuid.UUID]) -> list[RunRecord]:
        return await self.db.run(lambda conn: store.get_runs(conn, list(run_ids)))

    async def get_steps(self, run_id: uuid.UUID) -> list[StepRecord]:
        return await self.db.run(lambda conn: store.get_steps(conn, run_id))

    async def list_runs(
        self, status: str | None = None, function_id: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        return await self.db.run(lambda conn: store.list_runs(conn, status, function_id, limit))

    async def queue_stats(self) -> QueueStats:
        now = self.clock.now()
        return await self.db.run(lambda conn: store.queue_stats(conn, now))

    async def cancel(self, run_id: uuid.UUID, *, audit: Audit | None = None) -> str:
        """Cancel a run: `cancelled`, `cancelling` (running: it stops at its next step) or
        the status of a run already finished. RunNotFound (nothing written) if there is none."""
        now = self.clock.now()

        async def cancel(conn: Connection) -> str:
            result = await store.cancel_run(conn, run_id, now)
            if result is None:
                raise RunNotFound(f"no run with id {run_id}")
            return result

        result = await self._audited(cancel, audit)
        if run_id in self.held:
            self.cancel_requested.add(run_id)
        return result

    async def retry(self, run_id: uuid.UUID, *, audit: Audit | None = None) -> str:
        """Queue a failed or cancelled run again (`queued`), else its status unchanged.
        RunNotFound (nothing written) if there is none."""
        now = self.clock.now()

        async def retry(conn: Connection) -> str:
            result = await store.retry_run(conn, run_id, now)
            if result is None:
                raise RunNotFound(f"no run with id {run_id}")
            return result

        result = await self._audited(retry, audit)
        self.wake()
        return result

    async def find_runs(
        self, where: RunFilter, after: RunCursor | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """A page of the runs `where` matches, the latest first (a run's time: when it
        finished, else when it was created); the next page starts `after` the last one."""
        if not 1 <= limit <= MAX_MATCHING:
            raise EngineError(f"limit: expected 1 to {MAX_MATCHING}, got {limit}")
        return await self.db.run(lambda conn: store.find_runs(conn, where, after, limit))

    async def retry_matching(
        self, where: RunFilter, limit: int = MAX_MATCHING, *, audit: Audit | None = None
    ) -> list[uuid.UUID]:
        """Queue again up to `limit` failed or cancelled runs `where` matches (the latest
        finished first), in one statement; their ids."""
        if not 1 <= limit <= MAX_MATCHING:
            raise EngineError(f"limit: expected 1 to {MAX_MATCHING}, got {limit}")
        now = self.clock.now()
        ids = await self._audited(lambda conn: store.retry_matching(conn, where, now, limit), audit)
        if ids:
            self.wake()
        return ids

    async def cancel_matching(
        self, where: RunFilter, limit: int = MAX_MATCHING, *, audit: Audit | None = None
    ) -> CancelledRuns:
        """Cancel up to `limit` unfinished runs `where` matches (the newest first), in one
        statement: those not executing at once, running ones at their next step."""
        if not 1 <= limit <= MAX_MATCHING:
            raise EngineError(f"limit: expected 1 to {MAX_MATCHING}, got {limit}")
        now = self.clock.now()
        done = await self._audited(lambda conn: store.cancel_matching(conn, where, now, limit), audit)
        self.cancel_requested |= set(done.cancelling) & self.held.keys()
        return done

    async def finished_per_bucket(self, since: float, bucket_s: int) -> list[FinishedBucket]:
        """Runs finished since `since`, counted by status per bucket of `bucket_s` seconds
        (buckets with none are absent)."""
        return await self.db.run(lambda conn: store.finished_per_bucket(conn, since, bucket_s))

    async def wait_for_run(self, run_id: uuid.UUID, timeout_s: float, poll_s: float = 0.1) -> RunRecord:
        """Wait until the run finishes or `timeout_s` passes; returns its latest record.

        A run finished in this process wakes the waiter at once; one finished by another
        replica is seen by polling, 0.1 s at first, backing off to 5 s.
        """
        finished = self._finished.setdefault(run_id, trio.Event())
        polls = Backoff(base_s=poll_s, factor=2.0, max_s=5.0, jitter=0.0)
        with trio.move_on_after(timeout_s):
            for attempt in itertools.count(1):
                record = await self.get_run(run_id)
                if record.status in ("succeeded", "failed", "cancelled"):
                    self._finished.pop(run_id, None)
                    return record
                with trio.move_on_after(polls.delay(attempt)):
                    await finished.wait()
        self._finished.pop(run_id, None)
        return await self.get_run(run_id)
