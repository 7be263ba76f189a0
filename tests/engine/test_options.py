"""Function options beyond the basics: rate limit, debounce, priority, drain, bad definitions."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.errors import EngineError
from deneva.engine.functions import CronTrigger, Debounce, EventTrigger, Function, RateLimit, Registry
from tests.engine.conftest import running_circuit, running_engine


async def _noop(ctx: Context) -> None:
    return None


def test_bad_cron_strings_and_paths_fail_at_registration() -> None:
    with pytest.raises(EngineError, match="minute field"):
        Registry().add(Function("bad", _noop, (CronTrigger("61 * * * *"),)))
    with pytest.raises(EngineError, match="unknown timezone"):
        Registry().add(Function("bad", _noop, (CronTrigger("0 * * * *", timezone="Mars/Base"),)))
    with pytest.raises(ValueError, match="bad event path"):
        EventTrigger("x/y", match={"tenant": 1})
    registry = Registry()
    registry.add(Function("twice", _noop))
    with pytest.raises(EngineError, match="registered twice"):
        registry.add(Function("twice", _noop))


async def test_rate_limit_skips_events_over_the_limit_per_key(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    registry.add(
        Function("limited", _noop, (EventTrigger("x/rl"),), rate_limit=RateLimit(2, 60, key="data.user"))
    )
    async with running_engine(db, registry) as engine:
        a = await engine.send([{"name": "x/rl", "data": {"user": "a"}} for _ in range(5)])
        b = await engine.send({"name": "x/rl", "data": {"user": "b"}})
        await trio.sleep(61)
        later = await engine.send({"name": "x/rl", "data": {"user": "a"}})
    assert len(a.run_ids) == 2 and len(b.run_ids) == 1 and len(later.run_ids) == 1


async def test_debounce_runs_once_with_the_last_event_of_a_burst(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    seen: list[int] = []

    async def record(ctx: Context) -> None:
        seen.append(ctx.data["n"])

    registry.add(
        Function("debounced", record, (EventTrigger("x/db"),), debounce=Debounce(30, key="data.doc"))
    )
    async with running_engine(db, registry) as engine:
        for n in range(5):
            await engine.send({"name": "x/db", "data": {"doc": "d1", "n": n}})
            await trio.sleep(10)
        await trio.sleep(120)
    assert seen == [4]
    assert await db.fetchval("SELECT count(*) FROM engine_runs") == 1


async def test_higher_priority_runs_first(db: Database, autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry()
    order: list[str] = []

    async def record(ctx: Context) -> None:
        order.append(ctx.function_id)

    registry.add(Function("low", record, (EventTrigger("x/p"),), priority=0))
    registry.add(Function("high", record, (EventTrigger("x/p"),), priority=10))
    async with running_engine(db, registry, workers=1, dispatcher=False) as engine:
        await engine.send({"name": "x/p"})
        claimed, _ = await engine.claim(1)
    assert [r.function_id for r in claimed] == ["high"]


async def test_drain_lets_short_runs_finish_and_gives_back_the_rest(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    finished: list[str] = []

    async def quick(ctx: Context) -> None:
        await trio.sleep(1)
        finished.append("quick")

    async def slow(ctx: Context) -> None:
        await trio.sleep(3600)
        finished.append("slow")

    registry.add(Function("quick", quick, (EventTrigger("x/d"),)))
    registry.add(Function("slow", slow, (EventTrigger("x/d"),)))
    drain = trio.Event()
    async with running_circuit(
        db, registry, owner="draining-worker", drain=drain, scheduler=False
    ) as circuit:
        engine = circuit.engine
        await engine.send({"name": "x/d"})
        with trio.fail_after(60):
            while len(engine.held) < 2:
                await trio.sleep(0.1)
        drain.set()
        await trio.sleep(10)  # the grace period
    assert finished == ["quick"]
    rows = {
        r["function_id"]: r
        for r in await db.fetch("SELECT function_id, status, lease_owner FROM engine_runs")
    }
    assert rows["quick"]["status"] == "succeeded"
    assert rows["slow"]["status"] == "sleeping" and rows["slow"]["lease_owner"] is None
