"""The engine's operator API behind the console: runs by filter a page at a time,
retry and cancel of every matching run (bounded, one statement each), finished runs per
bucket, and audit writes that commit with the action or not at all."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
import trio.testing

from deneva.clock import TrioClock, as_datetime
from deneva.db import Connection, Database
from deneva.engine.builtin import register_builtin
from deneva.engine.context import Context
from deneva.engine.engine import Engine
from deneva.engine.errors import EngineError, RunNotFound
from deneva.engine.functions import EventTrigger, Registry
from deneva.engine.model import FINISHED, UNFINISHED, RunCursor, RunFilter
from tests.engine.conftest import EPOCH, running_engine


def _registry() -> Registry:
    registry = register_builtin(Registry())

    @registry.function("sync-a", EventTrigger("x/a"))
    async def sync_a(ctx: Context) -> None:
        return None

    @registry.function("sync-b", EventTrigger("x/b"))
    async def sync_b(ctx: Context) -> None:
        return None

    return registry


async def _seed(
    db: Database, engine: Engine, spec: list[tuple[str, str, str, float | None]]
) -> list[uuid.UUID]:
    """Runs of (function, status, tenant, finished offset from EPOCH in s; None: not
    finished), created at EPOCH - 1 h + i s, made through the engine and then moved to
    their status in SQL (no dispatcher runs)."""
    ids = []
    for i, (function, status, tenant, finished) in enumerate(spec):
        run_id = await engine.invoke(function, {"tenant_id": tenant})
        await db.execute(
            "UPDATE engine_runs SET status = $2, created_at = $3, finished_at = $4 WHERE id = $1",
            run_id,
            status,
            as_datetime(EPOCH - 3600 + i),
            None if finished is None else as_datetime(EPOCH + finished),
        )
        ids.append(run_id)
    return ids


async def _audits(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("SELECT event_type, details FROM audit_log ORDER BY id")]


def _audit(event_type: str) -> Any:
    async def record(conn: Connection, result: Any) -> None:
        shown = [str(r) for r in result] if isinstance(result, list) else str(result)
        await conn.execute(
            "INSERT INTO audit_log (event_type, actor, details) VALUES ($1, 'test', $2)",
            event_type,
            {"result": shown},
        )

    return record


async def test_runs_come_a_page_at_a_time_latest_first_without_gaps_or_repeats(db: Database) -> None:
    engine = Engine(db, _registry(), TrioClock(EPOCH), owner="t")
    spec: list[tuple[str, str, str, float | None]] = []
    for i in range(23):
        status = ("succeeded", "failed", "cancelled", "queued", "waiting")[i % 5]
        finished = None if status in UNFINISHED else float(i // 2)  # pairs finish at the same instant
        spec.append(("sync-a" if i % 2 else "sync-b", status, f"t{i % 3}", finished))
    ids = await _seed(db, engine, spec)
    seen: list[uuid.UUID] = []
    after: RunCursor | None = None
    while True:
        page = await engine.find_runs(RunFilter(), after, limit=4)
        seen += [r.id for r in page]
        if len(page) < 4:
            break
        after = RunCursor.after(page[-1])
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    times = [(r.finished_at or r.created_at, r.id) for r in await engine.get_runs(seen)]
    by_id = dict((i, t) for t, i in times)
    keys = [(by_id[i], i) for i in seen]
    assert keys == sorted(keys, reverse=True)  # finished ones by finish, the others by creation
    # Filters: status, function, event data, window.
    failed_b = await engine.find_runs(RunFilter(("failed",), "sync-b"))
    assert {r.id for r in failed_b} == {
        ids[i] for i, s in enumerate(spec) if s[1] == "failed" and s[0] == "sync-b"
    }
    of_t1 = await engine.find_runs(RunFilter(data={"tenant_id": "t1"}))
    assert {r.id for r in of_t1} == {ids[i] for i, s in enumerate(spec) if s[2] == "t1"}
    window = await engine.find_runs(RunFilter(FINISHED, since=EPOCH + 3, until=EPOCH + 6))
    assert {r.id for r in window} == {
        ids[i] for i, s in enumerate(spec) if s[3] is not None and 3 <= s[3] < 6
    }
    with pytest.raises(ValueError, match="statuses"):
        RunFilter(("bogus",))
    with pytest.raises(EngineError, match="limit"):
        await engine.find_runs(RunFilter(), limit=0)


async def test_retry_matching_queues_only_failed_and_cancelled_matching_runs_up_to_its_limit(
    db: Database,
) -> None:
    engine = Engine(db, _registry(), TrioClock(EPOCH), owner="t")
    spec: list[tuple[str, str, str, float | None]] = [
        ("sync-a", "failed", "t1", 1.0),
        ("sync-a", "cancelled", "t1", 2.0),
        ("sync-a", "failed", "t2", 3.0),  # another tenant
        ("sync-b", "failed", "t1", 4.0),  # another function
        ("sync-a", "succeeded", "t1", 5.0),  # not retryable
        ("sync-a", "queued", "t1", None),
        ("sync-a", "failed", "t1", 6.0),
    ]
    ids = await _seed(db, engine, spec)
    where = RunFilter(function_id="sync-a", data={"tenant_id": "t1"})
    first = await engine.retry_matching(where, limit=2, audit=_audit("retry.many"))
    assert first == [ids[6], ids[1]]  # the latest finished first, at most 2
    second = await engine.retry_matching(where, audit=_audit("retry.many"))
    assert second == [ids[0]]
    statuses = {r.id: r.status for r in await engine.get_runs(ids)}
    assert [statuses[i] for i in ids] == [
        "queued",
        "queued",
        "failed",
        "failed",
        "succeeded",
        "queued",
        "queued",
    ]
    retried = await engine.get_run(ids[6])
    assert retried.attempt == 0 and retried.finished_at is None
    assert [a["details"]["result"] for a in await _audits(db)] == [
        [str(ids[6]), str(ids[1])],
        [str(ids[0])],
    ]
    assert await engine.retry_matching(where) == []


async def test_cancel_matching_cancels_idle_runs_and_asks_running_ones_to_stop(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = register_builtin(Registry())
    release = trio.Event()
    reached: list[str] = []

    @registry.function("busy", EventTrigger("x/busy"))
    async def busy(ctx: Context) -> None:
        async def first() -> None:
            reached.append("first")
            await release.wait()

        await ctx.step.run("first", first)
        await ctx.step.run("second", lambda: reached.append("second"))

    @registry.function("waiter", EventTrigger("x/wait"))
    async def waiter(ctx: Context) -> Any:
        return await ctx.step.wait_for_event("wait", event="x/never", timeout_s=86_400)

    async with running_engine(db, registry) as engine:
        running = (await engine.send({"name": "x/busy"})).run_ids[0]
        waiting = (await engine.send({"name": "x/wait"})).run_ids[0]
        done = (await engine.send({"name": "deneva/noop"})).run_ids[0]
        assert (await engine.wait_for_run(done, 60)).status == "succeeded"
        with trio.fail_after(60):
            while (await engine.get_run(waiting)).status != "waiting" or not reached:
                await trio.sleep(0.5)
        await engine.pause("deneva-noop")
        queued = (await engine.send({"name": "deneva/noop"})).run_ids[0]
        result = await engine.cancel_matching(RunFilter(), audit=_audit("cancel.many"))
        assert set(result.cancelled) == {waiting, queued} and result.cancelling == (running,)
        assert await db.fetchval("SELECT count(*) FROM engine_waits WHERE run_id = $1", waiting) == 0
        release.set()
        record = await engine.wait_for_run(running, 60)
    assert record.status == "cancelled" and reached == ["first"]
    assert (await engine.get_run(done)).status == "succeeded"  # finished runs are left alone
    assert [a["event_type"] for a in await _audits(db)] == ["cancel.many"]


async def test_an_action_and_its_audit_row_commit_together_or_not_at_all(db: Database) -> None:
    engine = Engine(db, _registry(), TrioClock(EPOCH), owner="t")
    [failed] = await _seed(db, engine, [("sync-a", "failed", "t1", 1.0)])

    async def broken(conn: Connection, result: Any) -> None:
        await conn.execute("INSERT INTO audit_log (event_type, actor) VALUES (NULL, 'test')")

    with pytest.raises(Exception, match="null value"):
        await engine.retry(failed, audit=broken)
    assert (await engine.get_run(failed)).status == "failed"  # the retry rolled back with it
    with pytest.raises(Exception, match="null value"):
        await engine.pause("sync-a", audit=broken)
    assert await engine.paused() == []
    missing = uuid.uuid4()
    with pytest.raises(RunNotFound):
        await engine.retry(missing, audit=_audit("retry"))
    with pytest.raises(RunNotFound):
        await engine.cancel(missing, audit=_audit("cancel"))
    assert await _audits(db) == []  # no row for what did not happen
    run_id = await engine.invoke("sync-b", {"x": 1}, audit=_audit("invoke"))
    assert await _audits(db) == [{"event_type": "invoke", "details": {"result": str(run_id)}}]


async def test_finished_runs_are_counted_per_bucket_and_status(db: Database) -> None:
    engine = Engine(db, _registry(), TrioClock(EPOCH), owner="t")
    await _seed(
        db,
        engine,
        [
            ("sync-a", "succeeded", "t", 10.0),
            ("sync-a", "failed", "t", 20.0),
            ("sync-a", "succeeded", "t", 900.0),
            ("sync-a", "cancelled", "t", 1799.0),
            ("sync-a", "queued", "t", None),
            ("sync-a", "succeeded", "t", -4000.0),  # before the window
        ],
    )
    buckets = await engine.finished_per_bucket(EPOCH - 60, 900)
    assert [(b.start - EPOCH, b.succeeded, b.failed, b.cancelled) for b in buckets] == [
        (0.0, 1, 1, 0),
        (900.0, 1, 0, 1),
    ]
