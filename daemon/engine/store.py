"""The engine's storage: every statement is a named file in `sql/queries/engine_*.sql`.

Every function here runs on the asyncio side of the database bridge and takes a
connection: the engine calls each through `Database.run`/`.transaction`, so a unit of
work (send a batch of events, claim a batch, complete a batch) is one crossing and,
where it must be atomic, one transaction. Only `deneva.engine.engine` imports this
module; everything else goes through the `Engine`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from deneva.db import Connection
from deneva.engine.errors import EngineError
from deneva.engine.events import Event
from deneva.engine.functions import Function, Registry, failure_document, key_of, stored_key
from deneva.engine.model import (
    FOREVER,
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
    new_run_id,
    ts,
)
from deneva.sql import query

log = logging.getLogger("deneva.engine")

NOTIFY_CHANNEL = "deneva_runs"
PAUSED_CHANNEL = "deneva_paused"  # pause or resume: schedulers re-read what is paused
ENGINE = "*"  # the engine_paused row that pauses every function
MAX_UUID = uuid.UUID(int=(1 << 128) - 1)  # after every run id (the first page's cursor)

Q_INSERT_RUNS = query("engine_insert_runs")
Q_INSERT_DEBOUNCED = query("engine_insert_debounced_run")
Q_INSERT_COALESCED = query("engine_insert_coalesced_run")
Q_CLAIM_IDEMPOTENCY = query("engine_claim_idempotency_keys")
Q_COUNT_RATE = query("engine_count_rate_window")
Q_NOTIFY = query("engine_notify")
Q_CUSTOM_PLANS = query("engine_custom_plans")
Q_INSERT_EVENTS = query("engine_insert_events")
Q_CLAIM_DELIVERY = query("engine_claim_delivery")
Q_RESOLVE_WAITS = query("engine_resolve_waits")
Q_CLAIM_FREE = query("engine_claim_free_runs")
Q_WAITING_KEYS = query("engine_waiting_keys")
Q_KEYED_CANDIDATES = query("engine_keyed_candidates")
Q_LOCK_KEYS = query("engine_lock_concurrency_keys")
Q_RUNNING_PER_KEY = query("engine_running_per_key")
Q_START_CHOSEN = query("engine_start_chosen_runs")
Q_POISONED_DUE = query("engine_poisoned_due_runs")
Q_STEPS_OF_RUNS = query("engine_steps_of_runs")
Q_NEXT_DUE = query("engine_next_due")
Q_RECORD_STEPS = query("engine_record_steps")
Q_LOCK_LEASED = query("engine_lock_leased_runs")
Q_LEASES_HELD = query("engine_leases_held")
Q_EARLY_EVENT = query("engine_early_event")
Q_DELETE_WAIT = query("engine_delete_wait")
Q_RECORD_STEP = query("engine_record_step")
Q_STEP_OUTPUT = query("engine_step_output")
Q_INSERT_WAITS = query("engine_insert_waits")
Q_COMPLETE = query("engine_complete_runs")
Q_RUN_CREATED_AT = query("engine_run_created_at")
Q_RESUME_WAITING = query("engine_resume_waiting_run")
Q_RENEW_LEASES = query("engine_renew_leases")
Q_RESCUE = query("engine_rescue_orphans")
Q_RELEASE = query("engine_release_runs")
Q_INSERT_TICKS = query("engine_insert_cron_ticks")
Q_LAST_TICKS = query("engine_last_cron_ticks")
Q_PAUSED = query("engine_paused")
Q_PAUSE = query("engine_pause")
Q_RESUME = query("engine_resume")
Q_GET_RUN = query("engine_run_columns")
Q_GET_RUNS = query("engine_get_runs")
Q_LIST_RUNS = query("engine_list_runs")
Q_GET_STEPS = query("engine_get_steps")
Q_LOCK_RUN = query("engine_lock_run")
Q_CANCEL_IDLE = query("engine_cancel_idle_run")
Q_REQUEST_CANCEL = query("engine_request_cancel")
Q_RETRY = query("engine_retry_run")
Q_RUN_STATUS = query("engine_run_status")
Q_QUEUE_STATS = query("engine_queue_stats")
Q_FIND_RUNS = query("engine_find_runs")
Q_RETRY_MATCHING = query("engine_retry_matching")
Q_CANCEL_MATCHING = query("engine_cancel_matching")
Q_FINISHED_BUCKETS = query("engine_finished_buckets")
Q_PRUNE_RUNS = query("engine_prune_runs")
Q_PRUNE_EVENTS = query("engine_prune_events")
Q_PRUNE_IDEMPOTENCY = query("engine_prune_idempotency_keys")
Q_PRUNE_CRON_TICKS = query("engine_prune_cron_ticks")
Q_PRUNE_RATE_WINDOWS = query("engine_prune_rate_windows")
Q_PRUNE_DELIVERIES = query("engine_prune_webhook_deliveries")


# -- planning (pure) -----------------------------------------------------------------


def plan_run(function: Function, document: dict[str, Any], now: float, run_at: float | None = None) -> NewRun:
    """A run of `function` for one event document; EngineError if a key field is missing."""
    run_at = now if run_at is None else run_at
    concurrency_key = concurrency_limit = None
    if function.concurrency is not None:
        key = key_of(function.concurrency.paths, document, f"{function.id} concurrency key")
        concurrency_key = stored_key(function.id, key)
        concurrency_limit = function.concurrency.limit
    idempotency_key = idempotency_until = None
    if function.idempotency is not None:
        key = key_of(function.idempotency.paths, document, f"{function.id} idempotency key")
        idempotency_key = stored_key(function.id, key)
        idempotency_until = now + function.idempotency.window_s
    debounce_key = None
    if function.debounce is not None:
        key = key_of(function.debounce.paths, document, f"{function.id} debounce key")
        debounce_key = stored_key(function.id, key)
        run_at = max(run_at, now + function.debounce.period_s)
    if function.coalesce is not None:
        key = key_of(function.coalesce.paths, document, f"{function.id} coalesce key")
        debounce_key = stored_key(function.id, key)
    rate_key, rate_limit, window = None, 0, 0.0
    if function.rate_limit is not None:
        key = key_of(function.rate_limit.paths, document, f"{function.id} rate limit key")
        rate_key = stored_key(function.id, key)
        rate_limit = function.rate_limit.limit
        window = now - (now % function.rate_limit.period_s)
    return NewRun(
        new_run_id(),
        function.id,
        document,
        function.max_attempts,
        function.priority,
        run_at,
        concurrency_key,
        concurrency_limit,
        idempotency_key,
        idempotency_until,
        debounce_key,
        rate_key,
        rate_limit,
        window,
        coalesce=function.coalesce is not None,
    )


def plan_for_events(
    registry: Registry, documents: Sequence[dict[str, Any]], now: float
) -> tuple[list[NewRun], list[str]]:
    runs: list[NewRun] = []
    errors: list[str] = []
    for document in documents:
        for function, trigger in registry.triggered_by(document["name"]):
            if not trigger.matches(document):
                continue
            try:
                runs.append(plan_run(function, document, now))
            except EngineError as exc:
                errors.append(str(exc))
    return runs, errors


# -- writing runs ------------------------------------------------------------------------


async def insert_runs(conn: Connection, runs: Sequence[NewRun], now: float) -> list[uuid.UUID]:
    """Insert planned runs, applying idempotency, rate limits, debounce and coalescing;
    notify workers. Returns the runs' ids (for a debounced or coalesced event, the queued
    run it joined). Shared rows (idempotency keys, rate windows, queued runs of a debounce
    or coalesce key) are written in key order, so two batches sharing keys never lock them
    in opposite orders (a deadlock)."""
    if not runs:
        return []
    keep = list(runs)
    keyed = [r for r in keep if r.idempotency_key is not None]
    if keyed:
        first: dict[str, NewRun] = {}
        for run in keyed:
            first.setdefault(run.idempotency_key or "", run)
        won = await conn.fetch(
            Q_CLAIM_IDEMPOTENCY,
            sorted(first),
            [first[k].id for k in sorted(first)],
            [ts(first[k].idempotency_until) for k in sorted(first)],
            ts(now),
        )
        winners = {row["run_id"] for row in won}
        keep = [r for r in keep if r.idempotency_key is None or r.id in winners]
    limited = sorted((r for r in keep if r.rate_key is not None), key=lambda r: r.rate_key or "")
    for run in limited:
        count = await conn.fetchval(Q_COUNT_RATE, run.rate_key, ts(run.rate_window_start))
        if count > run.rate_limit:
            keep.remove(run)
    joined: dict[uuid.UUID, uuid.UUID] = {}
    for run in sorted((r for r in keep if r.debounce_key is not None), key=lambda r: r.debounce_key or ""):
        joined[run.id] = await conn.fetchval(
            Q_INSERT_COALESCED if run.coalesce else Q_INSERT_DEBOUNCED,
            run.id,
            run.function_id,
            run.event,
            run.max_attempts,
            run.priority,
            ts(run.run_at),
            run.concurrency_key,
            run.concurrency_limit,
            run.debounce_key,
            ts(now),
        )
    inserted = [joined[r.id] for r in keep if r.debounce_key is not None]  # in the batch's order
    plain = [r for r in keep if r.debounce_key is None]
    if plain:
        await conn.fetch(
            Q_INSERT_RUNS,
            [r.id for r in plain],
            [r.function_id for r in plain],
            [r.event for r in plain],
            [r.max_attempts for r in plain],
            [r.priority for r in plain],
            [ts(r.run_at) for r in plain],
            [r.concurrency_key for r in plain],
            [r.concurrency_limit for r in plain],
            [r.debounce_key for r in plain],
            ts(now),
            NOTIFY_CHANNEL,
        )
        inserted.extend(r.id for r in plain)
    if len(inserted) > len(plain):  # debounced runs (plain ones notified in their statement)
        await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    return inserted


# -- events ------------------------------------------------------------------------------


async def send_events(
    conn: Connection,
    registry: Registry,
    events: Sequence[Event],
    now: float,
    delivery: Delivery | None = None,
) -> SendResult:
    """Store events (a known id is a no-op), start the runs they trigger, resolve waits.
    With a `delivery`, it is recorded first in the same transaction, and if it was
    recorded before (or by a transaction that committed while this one waited on its
    row), nothing is stored: the result is `duplicate`."""
    if not events:
        return SendResult((), (), ())
    async with conn.transaction():
        if delivery is not None:
            fresh_delivery = await conn.fetchval(Q_CLAIM_DELIVERY, delivery.source, delivery.id, ts(now))
            if fresh_delivery is None:
                return SendResult((), (), (), duplicate=True)
        new_ids = {
            row["id"]
            for row in await conn.fetch(
                Q_INSERT_EVENTS,
                [e.id for e in events],
                [e.name for e in events],
                [e.data for e in events],
                [ts(e.ts) for e in events],
                [ts(now)] * len(events),
            )
        }
        fresh = [e for e in events if e.id in new_ids]
        documents = [e.document() for e in fresh]
        runs, errors = plan_for_events(registry, documents, now)
        run_ids = await insert_runs(conn, runs, now)
        resumed: list[Any] = []
        if documents:
            resumed = await conn.fetch(Q_RESOLVE_WAITS, [d["name"] for d in documents], documents, ts(now))
            if resumed:
                await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    return SendResult(
        tuple(e.id for e in events),
        tuple(e.id for e in fresh),
        tuple(run_ids),
        tuple(errors),
        tuple(row["id"] for row in resumed),
    )


# -- claiming ---------------------------------------------------------------------------


MAX_KEYS_PER_CLAIM = 200  # concurrency keys a claim looks at (round-robin across claims)


async def _waiting_keys(conn: Connection, cursor: str, count: int) -> list[tuple[str, int]]:
    """Up to `count` keys with runs waiting, in key order after `cursor`, wrapping around."""
    rows = list(await conn.fetch(Q_WAITING_KEYS, cursor, count))
    if len(rows) < count and cursor:
        seen = {r["key"] for r in rows}
        rows += [r for r in await conn.fetch(Q_WAITING_KEYS, "", count - len(rows)) if r["key"] not in seen]
    return [(r["key"], r["concurrency_limit"]) for r in rows]


async def _claim_keyed(
    conn: Connection, now: float, room: int, cursor: str, start: tuple[Any, ...]
) -> tuple[list[Any], str]:
    """Claim up to `room` runs that have a concurrency key, fairly: the keys with runs
    waiting are taken in turn (from `cursor`, round-robin across claims), and each key's
    earliest due runs up to its free slots. Only keys with due runs are then locked (in
    key order) and counted against the runs executing now, so no number of replicas
    exceeds a limit. Returns the started rows and the cursor for the next claim."""
    keys = await _waiting_keys(conn, cursor, MAX_KEYS_PER_CLAIM)
    if not keys:
        return [], ""
    next_cursor = keys[-1][0]
    limits = dict(keys)
    # Each key's due heads, up to its limit, locked (rows another claim holds are skipped).
    candidates = await conn.fetch(Q_KEYED_CANDIDATES, ts(now), list(limits), list(limits.values()))
    if not candidates:
        return [], next_cursor
    due_keys = sorted({c["concurrency_key"] for c in candidates})
    await conn.fetch(Q_LOCK_KEYS, due_keys)
    running = {r["concurrency_key"]: r["n"] for r in await conn.fetch(Q_RUNNING_PER_KEY, due_keys)}
    slots = {k: limits[k] - running.get(k, 0) for k in due_keys}
    chosen: list[Any] = []
    for candidate in sorted(candidates, key=lambda c: (-c["priority"], c["run_at"])):
        key = candidate["concurrency_key"]
        if slots[key] > 0 and len(chosen) < room:
            slots[key] -= 1
            chosen.append(candidate["id"])
    if not chosen:
        return [], next_cursor
    rows = await conn.fetch(Q_START_CHOSEN, ts(now), chosen, *start)
    return list(rows), next_cursor


# The classes of SQLSTATE a row's own data causes (data exception, program limit exceeded:
# e.g. an index row too large): retrying the same row fails the same way.
_POISON_CLASSES = ("22", "54")


async def _claim_keyed_isolated(
    conn: Connection, now: float, room: int, cursor: str, start: tuple[Any, ...]
) -> tuple[list[Any], str, dict[uuid.UUID, str]]:
    """`_claim_keyed` in a savepoint, so that a row the database refuses cannot fail the
    whole claim (and every claim after it). When it fails on a row's data, each waiting
    key is tried alone; the due runs of a key that fails by itself are started without
    its lock and returned as poisoned (the engine fails them, on_failure and all), so
    they do not fail every claim forever. Other errors (deadlock, connection) propagate."""
    try:
        async with conn.transaction():
            claimed, next_cursor = await _claim_keyed(conn, now, room, cursor, start)
        return claimed, next_cursor, {}
    except asyncpg.PostgresError as exc:
        if not (exc.sqlstate or "").startswith(_POISON_CLASSES):
            raise
        log.error("a keyed claim failed on a row's data; finding the key (%s)", exc.sqlstate)
    poisoned: dict[uuid.UUID, str] = {}
    rows: list[Any] = []
    for key, limit in await _waiting_keys(conn, cursor, MAX_KEYS_PER_CLAIM):
        try:
            async with conn.transaction():
                await conn.fetch(Q_LOCK_KEYS, [key])
                await conn.fetch(Q_KEYED_CANDIDATES, ts(now), [key], [limit])
            continue
        except asyncpg.PostgresError as exc:
            if not (exc.sqlstate or "").startswith(_POISON_CLASSES):
                raise
            error = f"could not be claimed: {exc.sqlstate} {type(exc).__name__}"
        due = await conn.fetch(Q_POISONED_DUE, ts(now), key, room - len(rows))
        started = await conn.fetch(Q_START_CHOSEN, ts(now), [r["id"] for r in due], *start)
        rows += started
        poisoned.update((r["id"], error) for r in started)
        log.error("%d run(s) of a concurrency key fail: %s", len(started), error)
        if len(rows) >= room:
            break
    return rows, cursor, poisoned


async def claim_runs(
    conn: Connection,
    owner: str,
    now: float,
    lease_s: float,
    limit: int,
    limited: bool = True,
    key_cursor: str = "",
    lease_until: float | None = None,
) -> tuple[list[ClaimedRun], float | None, str]:
    """Claim up to `limit` due runs for `owner`, honouring concurrency limits and pauses.

    Runs with a concurrency key get up to half of the claim (`_claim_keyed`), the others
    the rest, so neither kind can starve the other. Returns the runs with their completed
    steps, when the next run falls due (None when the claim was full: more may be due
    now), and the key cursor for the next claim. Each run
    gets a lease token of its own, its lease ending `lease_s` from now on the database's
    clock (or at `lease_until`, on the engine's, when it keeps virtual time).
    """
    until = None if lease_until is None else ts(lease_until)
    rows: list[Any] = []
    poisoned: dict[uuid.UUID, str] = {}
    if limited:
        async with conn.transaction():  # the keyed claim and the free one: one unit
            rows, key_cursor, poisoned = await _claim_keyed_isolated(
                conn, now, max(1, limit // 2), key_cursor, (owner, until, lease_s)
            )
            if len(rows) < limit:
                rows += await conn.fetch(Q_CLAIM_FREE, ts(now), limit - len(rows), owner, until, lease_s)
    else:  # one statement: no transaction of its own to begin and commit
        rows = await conn.fetch(Q_CLAIM_FREE, ts(now), limit, owner, until, lease_s)
    # Read once claimed: only the lease holder, this engine now, writes a run's steps.
    steps: dict[uuid.UUID, dict[str, Any]] = {}
    resumed = [r["id"] for r in rows if not r["fresh"]]  # a run never started has no steps
    if resumed:
        for step in await conn.fetch(Q_STEPS_OF_RUNS, resumed):
            steps.setdefault(step["run_id"], {})[step["step_id"]] = step["output"]
    # Wanted only when the claim came back short (the dispatcher then waits until then).
    next_due = await conn.fetchval(Q_NEXT_DUE, ts(now)) if len(rows) < limit else None
    claimed = [
        ClaimedRun(
            r["id"],
            r["function_id"],
            r["event"],
            r["attempt"],
            r["max_attempts"],
            r["created_at"].timestamp(),
            steps.get(r["id"], {}),
            r["was"],
            poisoned.get(r["id"]),
            r["lease_token"],
        )
        for r in rows
    ]
    return claimed, (None if next_due is None else next_due.timestamp()), key_cursor


# -- steps -------------------------------------------------------------------------------


async def lock_leased(
    conn: Connection, leases: Sequence[tuple[uuid.UUID, uuid.UUID | None]]
) -> dict[uuid.UUID, bool]:
    """The runs of `leases` (run, token) still held under those tokens, share-locked until
    the transaction ends, with their cancel flag: what a worker may write steps for."""
    held = [(run_id, token) for run_id, token in leases if token is not None]
    if not held:
        return {}
    rows = await conn.fetch(Q_LOCK_LEASED, [h[0] for h in held], [h[1] for h in held])
    return {row["id"]: row["cancel_requested"] for row in rows}


async def record_steps(
    conn: Connection, items: Sequence[tuple[uuid.UUID, str, Any, uuid.UUID | None]], now: float
) -> dict[uuid.UUID, tuple[bool, bool]]:
    """Persist completed steps (run, step, value, lease token), fenced: only the steps of
    runs still held under their tokens are written. Returns (cancel requested, still ours)
    per run."""
    owned = await lock_leased(conn, list({(i[0], i[3]) for i in items}))
    mine = [i for i in items if i[0] in owned]
    if mine:
        await conn.execute(Q_CUSTOM_PLANS)
        await conn.execute(
            Q_RECORD_STEPS,
            [i[0] for i in mine],
            [i[1] for i in mine],
            [{"value": i[2]} for i in mine],
            [ts(now)] * len(mine),
        )
    return {run_id: (cancel, True) for run_id, cancel in owned.items()}


async def resolve_wait_timeout(
    conn: Connection, run_id: uuid.UUID, token: uuid.UUID | None, step_id: str, now: float
) -> tuple[bool, Any]:
    """A resumed waiting run: its wait timed out unless an event resolved it first.
    Returns whether the run is still ours (fenced by its lease token), and the step."""
    async with conn.transaction():
        if run_id not in await lock_leased(conn, [(run_id, token)]):
            return False, None
        await conn.execute(Q_DELETE_WAIT, run_id, step_id)
        await conn.execute(Q_RECORD_STEP, run_id, step_id, {"event": None}, ts(now))
        return True, await conn.fetchval(Q_STEP_OUTPUT, run_id, step_id)


# -- completing --------------------------------------------------------------------------


async def complete_runs(
    conn: Connection,
    registry: Registry,
    transitions: Sequence[Transition],
    tokens: Sequence[uuid.UUID | None],
    now: float,
) -> dict[uuid.UUID, str]:
    """Write a batch of transitions, each fenced by its run's lease token (`tokens`, in
    the same order); returns the final status per run written. What depends on a run's
    transition (a sleep's step, a wait, an on_failure run) is written after it, for the
    runs it was written for only."""
    if not transitions:
        return {}
    async with conn.transaction():
        await conn.execute(Q_CUSTOM_PLANS)
        rows = await conn.fetch(
            Q_COMPLETE,
            [t.run_id for t in transitions],
            list(tokens),
            ts(now),
            [t.status for t in transitions],
            [None if t.run_at is None and t.status != "waiting" else ts(t.run_at) for t in transitions],
            [t.output for t in transitions],
            [t.error for t in transitions],
            [None if t.finished_at is None else ts(t.finished_at) for t in transitions],
            [t.traceback for t in transitions],
        )
        final = {row["id"]: row["status"] for row in rows}
        sleeps = [t for t in transitions if t.step is not None and final.get(t.run_id) == "sleeping"]
        if sleeps:
            await conn.execute(
                Q_RECORD_STEPS,
                [t.run_id for t in sleeps],
                [t.step[0] for t in sleeps if t.step],
                [t.step[1] for t in sleeps if t.step],
                [ts(now)] * len(sleeps),
            )
        waiting = [t for t in transitions if t.wait is not None and final.get(t.run_id) == "waiting"]
        if waiting:
            await conn.execute(
                Q_INSERT_WAITS,
                [t.run_id for t in waiting],
                [t.wait.step_id for t in waiting if t.wait],
                [t.wait.event_name for t in waiting if t.wait],
                [".".join(t.wait.match_path) if t.wait and t.wait.match_path else "" for t in waiting],
                [t.wait.match_value if t.wait else None for t in waiting],
                [ts(t.wait.expires_at) if t.wait and t.wait.expires_at else None for t in waiting],
            )
        failures = [t for t in transitions if t.failure_event is not None and final.get(t.run_id) == "failed"]
        if failures:
            documents = [t.failure_event for t in failures if t.failure_event is not None]
            runs, _errors = plan_for_events(registry, documents, now)
            await insert_runs(conn, runs, now)
        if any(status in ("queued", "sleeping") for status in final.values()):
            await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    # An event that arrived before the wait was registered (the early-event race):
    # checked after the wait row is committed, so an event committed later finds it.
    for t in waiting:
        if t.wait is None or final.get(t.run_id) != "waiting":
            continue
        if await resume_if_event_arrived(conn, t.run_id, t.wait.step_id, t.wait, now):
            final[t.run_id] = "sleeping"  # resumes at once
    return final


async def resume_if_event_arrived(
    conn: Connection, run_id: uuid.UUID, step_id: str, wait: Any, now: float
) -> bool:
    async with conn.transaction():
        created = await conn.fetchval(Q_RUN_CREATED_AT, run_id)
        path = list(wait.match_path) if wait.match_path else None
        row = await conn.fetchrow(Q_EARLY_EVENT, wait.event_name, created, path, wait.match_value)
        if row is None:
            return False
        if await conn.fetchval(Q_DELETE_WAIT, run_id, step_id) is None:
            return False  # an event resolved it meanwhile
        document = {"name": row["name"], "data": row["data"], "id": row["id"], "ts": row["ts"]}
        await conn.execute(Q_RECORD_STEP, run_id, step_id, {"event": document}, ts(now))
        await conn.execute(Q_RESUME_WAITING, run_id, ts(now))
        await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
        return True


# -- leases ------------------------------------------------------------------------------


async def renew_leases(
    conn: Connection, leases: Sequence[tuple[uuid.UUID, uuid.UUID]], until: float | None, lease_s: float
) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Extend our leases (run, token) until `until` (None: `lease_s` on the database's
    clock). Returns the runs whose cancellation was requested, and the runs whose lease
    was lost (rescued, claimed again: someone else's now)."""
    ids, tokens = [lease[0] for lease in leases], [lease[1] for lease in leases]
    rows = await conn.fetch(Q_RENEW_LEASES, ids, tokens, None if until is None else ts(until), lease_s)
    renewed = {row["id"] for row in rows}
    cancels = {row["id"] for row in rows if row["cancel_requested"]}
    skipped = [lease for lease in leases if lease[0] not in renewed]
    if not skipped:
        return cancels, set()
    rows = await conn.fetch(Q_LEASES_HELD, [lease[0] for lease in skipped], [lease[1] for lease in skipped])
    held = {row["id"] for row in rows}
    return cancels, {lease[0] for lease in skipped if lease[0] not in held}


async def rescue_orphans(
    conn: Connection, registry: Registry, now: float, expired_before: float | None
) -> int:
    """Re-queue runs whose owner stopped renewing its lease (died); a run that was on its
    last attempt fails, and its function's on_failure handler is sent its failure, as for
    any failed run."""
    async with conn.transaction():
        rows = await conn.fetch(Q_RESCUE, ts(now), None if expired_before is None else ts(expired_before))
        documents = [
            failure_document(r["function_id"], str(r["id"]), r["last_error"], r["event"], now)
            for r in rows
            if r["status"] == "failed" and registry.has_failure_handler(r["function_id"])
        ]
        if documents:
            runs, _errors = plan_for_events(registry, documents, now)
            await insert_runs(conn, runs, now)
        if rows:
            await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    return len(rows)


async def release_runs(conn: Connection, leases: Sequence[tuple[uuid.UUID, uuid.UUID]], now: float) -> int:
    """Give back runs (run, lease token) claimed but not finished (shutdown): resumable at
    once elsewhere."""
    rows = await conn.fetch(
        Q_RELEASE, [lease[0] for lease in leases], [lease[1] for lease in leases], ts(now)
    )
    if rows:
        await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    return len(rows)


# -- cron --------------------------------------------------------------------------------


async def fire_ticks(
    conn: Connection, ticks: Sequence[tuple[str, float]], runs: Sequence[NewRun], now: float
) -> tuple[list[tuple[str, float]], set[str]]:
    """Record (function, tick) pairs; start runs only for ticks nobody recorded before and
    whose function is not paused. Returns the fired ticks and what is paused now."""
    async with conn.transaction():
        paused = {row["function_id"] for row in await conn.fetch(Q_PAUSED)}
        if not ticks:
            return [], paused
        rows = await conn.fetch(
            Q_INSERT_TICKS, [t[0] for t in ticks], [ts(t[1]) for t in ticks], [r.id for r in runs]
        )
        fired = {(row["function_id"], row["tick_at"].timestamp()) for row in rows}
        chosen = [run for tick, run in zip(ticks, runs, strict=True) if (tick[0], tick[1]) in fired]
        await insert_runs(conn, chosen, now)
    return sorted(fired), paused


async def last_ticks(conn: Connection, function_ids: Sequence[str]) -> dict[str, float]:
    rows = await conn.fetch(Q_LAST_TICKS, list(function_ids))
    return {row["function_id"]: row["last"].timestamp() for row in rows}


# -- pausing (seed 003's rollback lever) ---------------------------------------------------


async def paused(conn: Connection) -> list[PauseRecord]:
    return [PauseRecord(r["function_id"], r["paused_at"], r["paused_by"]) for r in await conn.fetch(Q_PAUSED)]


async def pause(conn: Connection, function_id: str, now: float, by: str | None) -> None:
    async with conn.transaction():
        await conn.execute(Q_PAUSE, function_id, ts(now), by)
        await conn.execute(Q_NOTIFY, PAUSED_CHANNEL)


async def resume(conn: Connection, function_id: str) -> bool:
    """Resume; wakes every replica's dispatcher (runs held back may start now) and
    scheduler (held-back cron ticks follow their missed-tick policy)."""
    async with conn.transaction():
        was_paused = await conn.fetchval(Q_RESUME, function_id) is not None
        if was_paused:
            await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
            await conn.execute(Q_NOTIFY, PAUSED_CHANNEL)
    return was_paused


# -- inspecting and steering ---------------------------------------------------------------


def _record(row: Any) -> RunRecord:
    return RunRecord(
        row["id"],
        row["function_id"],
        row["status"],
        row["attempt"],
        row["max_attempts"],
        row["created_at"],
        row["started_at"],
        row["finished_at"],
        row["run_at"],
        row["last_error"],
        row["output"],
        row["event"],
        row["last_traceback"],
    )


async def get_run(conn: Connection, run_id: uuid.UUID) -> RunRecord | None:
    row = await conn.fetchrow(Q_GET_RUN, run_id)
    return None if row is None else _record(row)


async def get_runs(conn: Connection, run_ids: Sequence[uuid.UUID]) -> list[RunRecord]:
    return [_record(row) for row in await conn.fetch(Q_GET_RUNS, list(run_ids))]


async def list_runs(
    conn: Connection, status: str | None, function_id: str | None, limit: int
) -> list[RunRecord]:
    return [_record(row) for row in await conn.fetch(Q_LIST_RUNS, status, function_id, limit)]


async def get_steps(conn: Connection, run_id: uuid.UUID) -> list[StepRecord]:
    rows = await conn.fetch(Q_GET_STEPS, run_id)
    return [StepRecord(row["step_id"], row["output"], row["completed_at"]) for row in rows]


async def cancel_run(conn: Connection, run_id: uuid.UUID, now: float) -> str | None:
    """Cancel now if not executing; otherwise ask the worker to stop at its next step."""
    async with conn.transaction():
        status = await conn.fetchval(Q_LOCK_RUN, run_id)
        if status is None:
            return None
        if status in ("queued", "sleeping", "waiting"):
            await conn.execute(Q_CANCEL_IDLE, run_id, ts(now))
            return "cancelled"
        if status == "running":
            await conn.execute(Q_REQUEST_CANCEL, run_id)
            return "cancelling"
        return str(status)


async def retry_run(conn: Connection, run_id: uuid.UUID, now: float) -> str | None:
    """Queue a failed or cancelled run again; completed steps are kept (resume)."""
    status = await conn.fetchval(Q_RETRY, run_id, ts(now))
    if status is None:
        current = await conn.fetchval(Q_RUN_STATUS, run_id)
        return None if current is None else str(current)
    await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    return str(status)


async def find_runs(
    conn: Connection, where: RunFilter, after: RunCursor | None, limit: int
) -> list[RunRecord]:
    cursor = (FOREVER, MAX_UUID) if after is None else (after.at, after.run_id)
    rows = await conn.fetch(Q_FIND_RUNS, *where.args(), *cursor, limit)
    return [_record(row) for row in rows]


async def retry_matching(conn: Connection, where: RunFilter, now: float, limit: int) -> list[uuid.UUID]:
    """Queue again the failed or cancelled runs `where` matches (at most `limit`)."""
    ids = [row["id"] for row in await conn.fetch(Q_RETRY_MATCHING, *where.args(), ts(now), limit)]
    if ids:
        await conn.execute(Q_NOTIFY, NOTIFY_CHANNEL)
    return ids


async def cancel_matching(conn: Connection, where: RunFilter, now: float, limit: int) -> CancelledRuns:
    """Cancel the unfinished runs `where` matches (at most `limit`)."""
    rows = await conn.fetch(Q_CANCEL_MATCHING, *where.args(), ts(now), limit)
    return CancelledRuns(
        tuple(r["id"] for r in rows if r["was"] != "running"),
        tuple(r["id"] for r in rows if r["was"] == "running"),
    )


async def finished_per_bucket(conn: Connection, since: float, bucket_s: int) -> list[FinishedBucket]:
    rows = await conn.fetch(Q_FINISHED_BUCKETS, ts(since), bucket_s)
    return [FinishedBucket(float(r["bucket"]), r["succeeded"], r["failed"], r["cancelled"]) for r in rows]


async def queue_stats(conn: Connection, now: float) -> QueueStats:
    row = await conn.fetchrow(Q_QUEUE_STATS, ts(now))
    assert row is not None
    age = row["oldest_due_age_s"]
    by_status = {status: int(n) for status, n in (row["by_status"] or {}).items()}
    return QueueStats(int(row["due"]), None if age is None else max(0.0, float(age)), by_status)


# -- retention (the janitor's passes call these through the engine) -------------------------

PRUNABLE_STATUSES = ("succeeded", "failed", "cancelled")


async def prune_runs(conn: Connection, status: str, before: datetime, limit: int) -> tuple[int, int]:
    """Delete up to `limit` runs of `status` finished before `before`; (runs, steps) deleted."""
    row = await conn.fetchrow(Q_PRUNE_RUNS, status, before, limit)
    assert row is not None
    return int(row["runs"]), int(row["steps"])


_PRUNE_TABLES = {
    "events": Q_PRUNE_EVENTS,
    "idempotency_keys": Q_PRUNE_IDEMPOTENCY,
    "cron_ticks": Q_PRUNE_CRON_TICKS,
    "rate_windows": Q_PRUNE_RATE_WINDOWS,
    "webhook_deliveries": Q_PRUNE_DELIVERIES,
}
PRUNABLE_TABLES = tuple(_PRUNE_TABLES)


async def prune_table(conn: Connection, table: str, before: datetime, limit: int) -> int:
    """Delete up to `limit` rows of one of PRUNABLE_TABLES older than `before`."""
    return int(await conn.fetchval(_PRUNE_TABLES[table], before, limit))
