"""The engine's SQL. Every function here runs on the asyncio side of the bridge and
takes a connection: the engine calls each through `Database.run`/`.transaction`,
so a unit of work (send a batch of events, claim a batch, complete a batch) is one
crossing and, where it must be atomic, one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from deneva.db import Connection
from deneva.engine.errors import EngineError
from deneva.engine.events import Event
from deneva.engine.functions import (
    Function,
    Registry,
    key_of,
)
from deneva.engine.model import (
    ClaimedRun,
    NewRun,
    RunRecord,
    SendResult,
    Transition,
    new_run_id,
    ts,
)

NOTIFY_CHANNEL = "deneva_runs"
# Batch statements take arrays of any length: a cached generic plan (which assumes
# ten array elements) turned the batched completion quadratic, so they plan each time.
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"


# -- planning (pure) -----------------------------------------------------------------


def plan_run(function: Function, document: dict[str, Any], now: float, run_at: float | None = None) -> NewRun:
    """A run of `function` for one event document; EngineError if a key field is missing."""
    run_at = now if run_at is None else run_at
    concurrency_key = concurrency_limit = None
    if function.concurrency is not None:
        key = key_of(function.concurrency.paths, document, f"{function.id} concurrency key")
        concurrency_key = f"{function.id}|{key}"
        concurrency_limit = function.concurrency.limit
    idempotency_key = idempotency_until = None
    if function.idempotency is not None:
        key = key_of(function.idempotency.paths, document, f"{function.id} idempotency key")
        idempotency_key = f"{function.id}|{key}"
        idempotency_until = now + function.idempotency.window_s
    debounce_key = None
    if function.debounce is not None:
        key = key_of(function.debounce.paths, document, f"{function.id} debounce key")
        debounce_key = f"{function.id}|{key}"
        run_at = max(run_at, now + function.debounce.period_s)
    rate_key, rate_limit, window = None, 0, 0.0
    if function.rate_limit is not None:
        key = key_of(function.rate_limit.paths, document, f"{function.id} rate limit key")
        rate_key = f"{function.id}|{key}"
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

_INSERT_RUNS = """
WITH inserted AS (
    INSERT INTO engine_runs (id, function_id, status, event, max_attempts, priority, run_at,
                             concurrency_key, concurrency_limit, debounce_key, created_at)
    SELECT id, function_id, 'queued', event, max_attempts, priority, run_at,
           concurrency_key, concurrency_limit, debounce_key, $11
    FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::timestamptz[],
                $7::text[], $8::int[], $9::text[], $10::boolean[])
         AS t(id, function_id, event, max_attempts, priority, run_at, concurrency_key,
              concurrency_limit, debounce_key, debounced)
    WHERE NOT debounced
    RETURNING 1
)
SELECT pg_notify($12, '') FROM (SELECT 1 FROM inserted LIMIT 1) AS any_inserted
"""

_INSERT_DEBOUNCED = """
INSERT INTO engine_runs (id, function_id, status, event, max_attempts, priority, run_at,
                         concurrency_key, concurrency_limit, debounce_key, created_at)
VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (debounce_key) WHERE status = 'queued' AND debounce_key IS NOT NULL
DO UPDATE SET event = excluded.event, run_at = excluded.run_at
RETURNING id
"""

_CLAIM_IDEMPOTENCY = """
INSERT INTO engine_idempotency (key, run_id, expires_at)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::timestamptz[])
ON CONFLICT (key) DO UPDATE SET run_id = excluded.run_id, expires_at = excluded.expires_at
    WHERE engine_idempotency.expires_at <= $4
RETURNING run_id
"""

_COUNT_RATE = """
INSERT INTO engine_rate_windows (key, window_start, count) VALUES ($1, $2, 1)
ON CONFLICT (key, window_start) DO UPDATE SET count = engine_rate_windows.count + 1
RETURNING count
"""


async def insert_runs(conn: Connection, runs: Sequence[NewRun], now: float) -> list[uuid.UUID]:
    """Insert planned runs, applying idempotency, rate limits and debounce; notify workers."""
    if not runs:
        return []
    keep = list(runs)
    keyed = [r for r in keep if r.idempotency_key is not None]
    if keyed:
        first: dict[str, NewRun] = {}
        for run in keyed:
            first.setdefault(run.idempotency_key or "", run)
        won = await conn.fetch(
            _CLAIM_IDEMPOTENCY,
            list(first),
            [r.id for r in first.values()],
            [ts(r.idempotency_until) for r in first.values()],
            ts(now),
        )
        winners = {row["run_id"] for row in won}
        keep = [r for r in keep if r.idempotency_key is None or r.id in winners]
    limited = [r for r in keep if r.rate_key is not None]
    for run in limited:
        count = await conn.fetchval(_COUNT_RATE, run.rate_key, ts(run.rate_window_start))
        if count > run.rate_limit:
            keep.remove(run)
    inserted: list[uuid.UUID] = []
    for run in [r for r in keep if r.debounce_key is not None]:
        inserted.append(
            await conn.fetchval(
                _INSERT_DEBOUNCED,
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
        )
    plain = [r for r in keep if r.debounce_key is None]
    if plain:
        await conn.fetch(
            _INSERT_RUNS,
            [r.id for r in plain],
            [r.function_id for r in plain],
            [r.event for r in plain],
            [r.max_attempts for r in plain],
            [r.priority for r in plain],
            [ts(r.run_at) for r in plain],
            [r.concurrency_key for r in plain],
            [r.concurrency_limit for r in plain],
            [r.debounce_key for r in plain],
            [False] * len(plain),
            ts(now),
            NOTIFY_CHANNEL,
        )
        inserted.extend(r.id for r in plain)
    if len(inserted) > len(plain):  # debounced runs (plain ones notified in their statement)
        await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return inserted


# -- events ------------------------------------------------------------------------------

_INSERT_EVENTS = """
INSERT INTO engine_events (id, name, data, ts, received_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::timestamptz[], $5::timestamptz[])
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

_RESOLVE_WAITS = """
WITH ev AS (
    SELECT name, doc, ord FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS e(name, doc, ord)
), hit AS (
    SELECT DISTINCT ON (w.run_id, w.step_id) w.run_id, w.step_id, e.doc
    FROM engine_waits w
    JOIN ev e ON e.name = w.event_name
             AND (w.match_path IS NULL OR e.doc #> w.match_path = w.match_value)
    WHERE w.expires_at IS NULL OR w.expires_at > $3
    ORDER BY w.run_id, w.step_id, e.ord
), gone AS (
    DELETE FROM engine_waits w USING hit
    WHERE w.run_id = hit.run_id AND w.step_id = hit.step_id
    RETURNING w.run_id, w.step_id, hit.doc
), recorded AS (
    INSERT INTO engine_steps (run_id, step_id, output, completed_at)
    SELECT run_id, step_id, jsonb_build_object('event', doc), $3 FROM gone
    ON CONFLICT DO NOTHING
    RETURNING run_id
)
UPDATE engine_runs r SET status = 'sleeping', run_at = $3
FROM gone WHERE r.id = gone.run_id AND r.status = 'waiting'
RETURNING r.id
"""


async def send_events(
    conn: Connection, registry: Registry, events: Sequence[Event], now: float
) -> SendResult:
    """Store events (a known id is a no-op), start the runs they trigger, resolve waits."""
    if not events:
        return SendResult((), (), ())
    async with conn.transaction():
        new_ids = {
            row["id"]
            for row in await conn.fetch(
                _INSERT_EVENTS,
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
            resumed = await conn.fetch(_RESOLVE_WAITS, [d["name"] for d in documents], documents, ts(now))
            if resumed:
                await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return SendResult(
        tuple(e.id for e in events),
        tuple(e.id for e in fresh),
        tuple(run_ids),
        tuple(errors),
        tuple(row["id"] for row in resumed),
    )


# -- claiming ---------------------------------------------------------------------------


def _start_picked(picked: str) -> str:
    """Start the runs `picked` selects: $1 now, $3 owner, $4 lease end (one statement)."""
    return f"""
WITH picked AS ({picked})
UPDATE engine_runs r
SET status = 'running',
    attempt = CASE WHEN r.status = 'queued' THEN r.attempt + 1 ELSE r.attempt END,
    lease_owner = $3, lease_expires_at = $4, started_at = coalesce(r.started_at, $1)
FROM picked WHERE r.id = picked.id
RETURNING r.id, r.function_id, r.event, r.attempt, r.max_attempts, r.created_at, picked.status AS was,
          picked.started_at IS NULL AS fresh
"""


# Due runs without a concurrency key ($2: how many).
_CLAIM_FREE = _start_picked("""
    SELECT id, status, started_at FROM engine_runs
    WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1 AND concurrency_key IS NULL
    ORDER BY priority DESC, run_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED""")

_LIMITED_CANDIDATES = """
SELECT id, concurrency_key, concurrency_limit FROM engine_runs
WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1 AND concurrency_key IS NOT NULL
ORDER BY priority DESC, run_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

_LOCK_KEYS = """
WITH ins AS (
    INSERT INTO engine_concurrency_keys (key) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING
)
SELECT key FROM engine_concurrency_keys WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE
"""

_RUNNING_PER_KEY = """
SELECT concurrency_key, count(*) AS n FROM engine_runs
WHERE status = 'running' AND concurrency_key = ANY($1::text[])
GROUP BY concurrency_key
"""

# Runs chosen under their concurrency keys' locks ($2: their ids).
_START_CHOSEN = _start_picked("SELECT id, status, started_at FROM engine_runs WHERE id = ANY($2::uuid[])")

_NEXT_DUE = """
SELECT min(run_at) FROM engine_runs WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at > $1
"""


async def claim_runs(
    conn: Connection, owner: str, now: float, lease_s: float, limit: int, limited: bool = True
) -> tuple[list[ClaimedRun], float | None]:
    """Claim up to `limit` due runs for `owner`, honouring concurrency limits.

    Returns the runs with their completed steps, and when the next run falls due.
    Runs sharing a concurrency key are claimed under that key's row lock and counted
    against the runs executing now, so no number of workers can exceed the limit.
    """
    lease_until = ts(now + lease_s)
    rows: list[Any] = []
    async with conn.transaction():
        rows = list(await conn.fetch(_CLAIM_FREE, ts(now), limit, owner, lease_until))
        room = limit - len(rows)
        if room > 0 and limited:
            candidates = await conn.fetch(_LIMITED_CANDIDATES, ts(now), room)
            if candidates:
                keys = sorted({c["concurrency_key"] for c in candidates})
                await conn.fetch(_LOCK_KEYS, keys)
                running = {r["concurrency_key"]: r["n"] for r in await conn.fetch(_RUNNING_PER_KEY, keys)}
                chosen: list[uuid.UUID] = []
                for candidate in candidates:
                    key = candidate["concurrency_key"]
                    if running.get(key, 0) < candidate["concurrency_limit"]:
                        running[key] = running.get(key, 0) + 1
                        chosen.append(candidate["id"])
                if chosen:
                    rows += await conn.fetch(_START_CHOSEN, ts(now), chosen, owner, lease_until)
        steps: dict[uuid.UUID, dict[str, Any]] = {}
        resumed = [r["id"] for r in rows if not r["fresh"]]  # a run never started has no steps
        if resumed:
            for step in await conn.fetch(
                "SELECT run_id, step_id, output FROM engine_steps WHERE run_id = ANY($1::uuid[])", resumed
            ):
                steps.setdefault(step["run_id"], {})[step["step_id"]] = step["output"]
        next_due = await conn.fetchval(_NEXT_DUE, ts(now))
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
        )
        for r in rows
    ]
    return claimed, (None if next_due is None else next_due.timestamp())


# -- steps -------------------------------------------------------------------------------

_RECORD_STEPS = """
INSERT INTO engine_steps (run_id, step_id, output, completed_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[])
ON CONFLICT DO NOTHING
"""

_RUN_FLAGS = """
SELECT id, cancel_requested, coalesce(lease_owner = $2, false) AS owned
FROM engine_runs WHERE id = ANY($1::uuid[])
"""


async def record_steps(
    conn: Connection, owner: str, items: Sequence[tuple[uuid.UUID, str, Any]], now: float
) -> dict[uuid.UUID, tuple[bool, bool]]:
    """Persist completed steps in one statement; return (cancel requested, still ours) per run."""
    await conn.execute(_CUSTOM_PLANS)
    await conn.execute(
        _RECORD_STEPS,
        [i[0] for i in items],
        [i[1] for i in items],
        [{"value": i[2]} for i in items],
        [ts(now)] * len(items),
    )
    flags = await conn.fetch(_RUN_FLAGS, list({i[0] for i in items}), owner)
    return {row["id"]: (row["cancel_requested"], row["owned"]) for row in flags}


_EARLY_EVENT = """
SELECT name, data, id, (extract(epoch FROM ts) * 1000)::bigint AS ts
FROM engine_events
WHERE name = $1 AND received_at >= $2 AND ($3::text[] IS NULL OR
      jsonb_build_object('name', name, 'data', data, 'id', id) #> $3::text[] = $4::jsonb)
ORDER BY received_at, id
LIMIT 1
"""


async def resolve_wait_timeout(conn: Connection, run_id: uuid.UUID, step_id: str, now: float) -> Any:
    """A resumed waiting run: its wait timed out unless an event resolved it first."""
    async with conn.transaction():
        await conn.execute("DELETE FROM engine_waits WHERE run_id = $1 AND step_id = $2", run_id, step_id)
        await conn.execute(
            "INSERT INTO engine_steps (run_id, step_id, output, completed_at) "
            "VALUES ($1, $2, '{\"event\": null}', $3) ON CONFLICT DO NOTHING",
            run_id,
            step_id,
            ts(now),
        )
        return await conn.fetchval(
            "SELECT output FROM engine_steps WHERE run_id = $1 AND step_id = $2", run_id, step_id
        )


# -- completing --------------------------------------------------------------------------

_COMPLETE = """
UPDATE engine_runs r
SET status = CASE WHEN r.cancel_requested AND t.status IN ('queued', 'sleeping', 'waiting')
                  THEN 'cancelled' ELSE t.status END,
    run_at = coalesce(t.run_at, r.run_at),
    output = t.output,
    last_error = coalesce(t.error, r.last_error),
    finished_at = CASE WHEN r.cancel_requested AND t.status IN ('queued', 'sleeping', 'waiting')
                       THEN $3 ELSE t.finished_at END,
    lease_owner = NULL, lease_expires_at = NULL
FROM unnest($1::uuid[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::text[], $8::timestamptz[])
     AS t(id, status, run_at, output, error, finished_at)
WHERE r.id = t.id AND r.lease_owner = $2 AND r.status = 'running'
RETURNING r.id, r.status
"""


async def complete_runs(
    conn: Connection, registry: Registry, owner: str, transitions: Sequence[Transition], now: float
) -> dict[uuid.UUID, str]:
    """Write a batch of transitions (fenced by lease owner); returns the final status per run."""
    if not transitions:
        return {}
    waiting = [t for t in transitions if t.wait is not None]
    async with conn.transaction():
        await conn.execute(_CUSTOM_PLANS)
        sleeps = [t for t in transitions if t.step is not None]
        if sleeps:
            await conn.execute(
                _RECORD_STEPS,
                [t.run_id for t in sleeps],
                [t.step[0] for t in sleeps if t.step],
                [t.step[1] for t in sleeps if t.step],
                [ts(now)] * len(sleeps),
            )
        if waiting:
            await conn.execute(
                "INSERT INTO engine_waits (run_id, step_id, event_name, match_path, match_value, expires_at) "
                "SELECT a, b, c, CASE WHEN d = '' THEN NULL ELSE string_to_array(d, '.') END, e, f "
                "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::timestamptz[]) "
                "AS t(a, b, c, d, e, f) ON CONFLICT DO NOTHING",
                [t.run_id for t in waiting],
                [t.wait.step_id for t in waiting if t.wait],
                [t.wait.event_name for t in waiting if t.wait],
                [".".join(t.wait.match_path) if t.wait and t.wait.match_path else "" for t in waiting],
                [t.wait.match_value if t.wait else None for t in waiting],
                [ts(t.wait.expires_at) if t.wait and t.wait.expires_at else None for t in waiting],
            )
        rows = await conn.fetch(
            _COMPLETE,
            [t.run_id for t in transitions],
            owner,
            ts(now),
            [t.status for t in transitions],
            [None if t.run_at is None and t.status != "waiting" else ts(t.run_at) for t in transitions],
            [t.output for t in transitions],
            [t.error for t in transitions],
            [None if t.finished_at is None else ts(t.finished_at) for t in transitions],
        )
        final = {row["id"]: row["status"] for row in rows}
        failures = [t for t in transitions if t.failure_event is not None and final.get(t.run_id) == "failed"]
        if failures:
            documents = [t.failure_event for t in failures if t.failure_event is not None]
            runs, _errors = plan_for_events(registry, documents, now)
            await insert_runs(conn, runs, now)
        if any(status in ("queued", "sleeping") for status in final.values()):
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
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
        created = await conn.fetchval("SELECT created_at FROM engine_runs WHERE id = $1", run_id)
        path = list(wait.match_path) if wait.match_path else None
        row = await conn.fetchrow(_EARLY_EVENT, wait.event_name, created, path, wait.match_value)
        if row is None:
            return False
        gone = await conn.fetchval(
            "DELETE FROM engine_waits WHERE run_id = $1 AND step_id = $2 RETURNING 1", run_id, step_id
        )
        if gone is None:
            return False  # an event resolved it meanwhile
        document = {"name": row["name"], "data": row["data"], "id": row["id"], "ts": row["ts"]}
        await conn.execute(
            "INSERT INTO engine_steps (run_id, step_id, output, completed_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING",
            run_id,
            step_id,
            {"event": document},
            ts(now),
        )
        await conn.execute(
            "UPDATE engine_runs SET status = 'sleeping', run_at = $2 WHERE id = $1 AND status = 'waiting'",
            run_id,
            ts(now),
        )
        await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
        return True


# -- leases ------------------------------------------------------------------------------


async def renew_leases(
    conn: Connection, owner: str, run_ids: Sequence[uuid.UUID], until: float
) -> set[uuid.UUID]:
    """Extend our leases; returns the runs whose cancellation was requested."""
    rows = await conn.fetch(
        "UPDATE engine_runs SET lease_expires_at = $3 WHERE id = ANY($1::uuid[]) AND lease_owner = $2 "
        "RETURNING id, cancel_requested",
        list(run_ids),
        owner,
        ts(until),
    )
    return {row["id"] for row in rows if row["cancel_requested"]}


_RESCUE = """
UPDATE engine_runs
SET status = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END,
    finished_at = CASE WHEN attempt >= max_attempts THEN $1 ELSE NULL END,
    last_error = 'worker lost (lease expired' || coalesce(' on ' || lease_owner, '') || ')',
    run_at = $1, lease_owner = NULL, lease_expires_at = NULL
WHERE id IN (
    SELECT id FROM engine_runs WHERE status = 'running' AND lease_expires_at < $1
    ORDER BY lease_expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED
)
RETURNING id, status
"""


async def rescue_orphans(conn: Connection, now: float) -> int:
    """Re-queue runs whose owner stopped renewing its lease (died)."""
    rows = await conn.fetch(_RESCUE, ts(now))
    if rows:
        await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return len(rows)


async def release_runs(conn: Connection, owner: str, run_ids: Sequence[uuid.UUID], now: float) -> int:
    """Give back runs claimed but not finished (shutdown): resumable at once elsewhere."""
    rows = await conn.fetch(
        "UPDATE engine_runs SET status = 'sleeping', run_at = $3, "
        "lease_owner = NULL, lease_expires_at = NULL "
        "WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND status = 'running' RETURNING id",
        list(run_ids),
        owner,
        ts(now),
    )
    if rows:
        await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return len(rows)


# -- cron --------------------------------------------------------------------------------


async def fire_ticks(
    conn: Connection, ticks: Sequence[tuple[str, float]], runs: Sequence[NewRun], now: float
) -> list[tuple[str, float]]:
    """Record (function, tick) pairs; start runs only for ticks nobody recorded before."""
    if not ticks:
        return []
    async with conn.transaction():
        rows = await conn.fetch(
            "INSERT INTO engine_cron_ticks (function_id, tick_at, run_id) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::uuid[]) ON CONFLICT DO NOTHING "
            "RETURNING function_id, tick_at",
            [t[0] for t in ticks],
            [ts(t[1]) for t in ticks],
            [r.id for r in runs],
        )
        fired = {(row["function_id"], row["tick_at"].timestamp()) for row in rows}
        chosen = [run for tick, run in zip(ticks, runs, strict=True) if (tick[0], tick[1]) in fired]
        await insert_runs(conn, chosen, now)
    return sorted(fired)


async def last_ticks(conn: Connection, function_ids: Sequence[str]) -> dict[str, float]:
    rows = await conn.fetch(
        "SELECT function_id, max(tick_at) AS last FROM engine_cron_ticks WHERE function_id = ANY($1::text[]) "
        "GROUP BY function_id",
        list(function_ids),
    )
    return {row["function_id"]: row["last"].timestamp() for row in rows}


# -- inspecting and steering ---------------------------------------------------------------

_RUN_COLUMNS = (
    "id, function_id, status, attempt, max_attempts, created_at, started_at, finished_at, run_at, "
    "last_error, output, event"
)


def _record(row: Any) -> RunRecord:
    return RunRecord(**{k: row[k] for k in _RUN_COLUMNS.split(", ")})


async def get_run(conn: Connection, run_id: uuid.UUID) -> RunRecord | None:
    row = await conn.fetchrow(f"SELECT {_RUN_COLUMNS} FROM engine_runs WHERE id = $1", run_id)
    return None if row is None else _record(row)


async def get_runs(conn: Connection, run_ids: Sequence[uuid.UUID]) -> list[RunRecord]:
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM engine_runs WHERE id = ANY($1::uuid[])", list(run_ids)
    )
    return [_record(row) for row in rows]


async def list_runs(
    conn: Connection, status: str | None, function_id: str | None, limit: int
) -> list[RunRecord]:
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM engine_runs "
        "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR function_id = $2) "
        "ORDER BY created_at DESC, id LIMIT $3",
        status,
        function_id,
        limit,
    )
    return [_record(row) for row in rows]


async def get_steps(conn: Connection, run_id: uuid.UUID) -> list[tuple[str, Any, datetime]]:
    rows = await conn.fetch(
        "SELECT step_id, output, completed_at FROM engine_steps WHERE run_id = $1 "
        "ORDER BY completed_at, step_id",
        run_id,
    )
    return [(row["step_id"], row["output"], row["completed_at"]) for row in rows]


async def cancel_run(conn: Connection, run_id: uuid.UUID, now: float) -> str | None:
    """Cancel now if not executing; otherwise ask the worker to stop at its next step."""
    async with conn.transaction():
        status = await conn.fetchval("SELECT status FROM engine_runs WHERE id = $1 FOR UPDATE", run_id)
        if status is None:
            return None
        if status in ("queued", "sleeping", "waiting"):
            await conn.execute(
                "UPDATE engine_runs SET status = 'cancelled', finished_at = $2, cancel_requested = true "
                "WHERE id = $1",
                run_id,
                ts(now),
            )
            await conn.execute("DELETE FROM engine_waits WHERE run_id = $1", run_id)
            return "cancelled"
        if status == "running":
            await conn.execute("UPDATE engine_runs SET cancel_requested = true WHERE id = $1", run_id)
            return "cancelling"
        return str(status)


async def retry_run(conn: Connection, run_id: uuid.UUID, now: float) -> str | None:
    """Queue a failed or cancelled run again; completed steps are kept (resume)."""
    status = await conn.fetchval(
        "UPDATE engine_runs SET status = 'queued', attempt = 0, run_at = $2, finished_at = NULL, "
        "cancel_requested = false WHERE id = $1 AND status IN ('failed', 'cancelled') RETURNING status",
        run_id,
        ts(now),
    )
    if status is None:
        current = await conn.fetchval("SELECT status FROM engine_runs WHERE id = $1", run_id)
        return None if current is None else str(current)
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return str(status)


async def queue_depth(conn: Connection, now: float) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM engine_runs "
            "WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1",
            ts(now),
        )
    )
