"""The rollback lever (seed 003): pausing a function, or the whole engine, is stored in
the database, so every replica obeys at once. A paused function's runs stay queued
(nothing lost, nothing started), running ones finish, its cron ticks are held back and
follow their missed-tick policy on resume. Two engines (their own pools, owners and
circuits) on one database, virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
import trio
import trio.testing

from deneva.clock import SystemClock
from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.engine import Engine
from deneva.engine.errors import UnknownFunction
from deneva.engine.functions import CronTrigger, EventTrigger, Function, Registry
from tests.engine.conftest import EPOCH, running_circuit

FINISHED = ("succeeded", "failed", "cancelled")


def _registry(ran: list[str]) -> Registry:
    registry = Registry()

    async def work(ctx: Context) -> None:
        ran.append(ctx.function_id)

    registry.add(Function("work", work, (EventTrigger("test/work"),)))
    registry.add(Function("other", work, (EventTrigger("test/other"),)))
    for missed in ("once", "all", "skip"):
        registry.add(Function(f"tick-{missed}", work, (CronTrigger("*/5 * * * *", missed=missed),)))
    return registry


@asynccontextmanager
async def two_engines(database_url: str, ran: list[str]) -> AsyncIterator[tuple[Engine, Engine, Database]]:
    """Replicas A and B: each its own pool (so each hears the other's NOTIFYs), circuit and owner."""
    async with AsyncExitStack() as stack:
        dbs = []
        for _ in range(2):
            db = await Database.open(database_url)
            stack.push_async_callback(db.close)
            dbs.append(db)
        a = await stack.enter_async_context(running_circuit(dbs[0], _registry(ran), owner="replica-a"))
        b = await stack.enter_async_context(running_circuit(dbs[1], _registry(ran), owner="replica-b"))
        yield a.engine, b.engine, dbs[0]


async def _statuses(db: Database, function_id: str) -> list[str]:
    rows = await db.fetch(
        "SELECT status FROM engine_runs WHERE function_id = $1 ORDER BY created_at", function_id
    )
    return [r["status"] for r in rows]


async def _until_finished(db: Database, function_id: str, count: int) -> None:
    with trio.fail_after(120):
        while (await _statuses(db, function_id)).count("succeeded") < count:
            await trio.sleep(0.1)


async def test_a_paused_function_waits_on_every_replica_and_runs_on_resume(
    database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    ran: list[str] = []
    async with two_engines(database_url, ran) as (a, b, db):
        await a.pause("work", by="test")
        assert [p.function_id for p in await b.paused()] == ["work"]
        await b.send([{"name": "test/work"}, {"name": "test/work"}, {"name": "test/other"}])
        await _until_finished(db, "other", 1)  # the others go on
        await trio.sleep(120)  # many claims by both replicas meanwhile
        assert await _statuses(db, "work") == ["queued", "queued"] and "work" not in ran
        resumed_at = trio.current_time()
        assert await a.resume("work") is True
        await _until_finished(db, "work", 2)
        # Woken by the resume (NOTIFY), not by their 30 s poll.
        assert trio.current_time() - resumed_at < 5
        assert await a.resume("work") is False  # was not paused any more


async def test_pausing_the_engine_holds_everything_back_until_resumed(
    database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    ran: list[str] = []
    async with two_engines(database_url, ran) as (a, b, db):
        await b.pause(None, by="test")
        await a.send([{"name": "test/work"}, {"name": "test/other"}])
        await trio.sleep(120)
        assert await _statuses(db, "work") == ["queued"] and await _statuses(db, "other") == ["queued"]
        assert not [f for f in ran if not f.startswith("tick")]
        await b.resume(None)
        await _until_finished(db, "work", 1)
        await _until_finished(db, "other", 1)


async def test_held_back_cron_ticks_follow_their_missed_tick_policy_on_resume(
    database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    ran: list[str] = []
    async with two_engines(database_url, ran) as (a, _b, db):
        # EPOCH is 00:00; the first ticks at 00:05 fire once each (two schedulers, one tick).
        await trio.sleep(EPOCH + 6 * 60 - a.clock.now())
        for missed in ("once", "all", "skip"):
            assert await _statuses(db, f"tick-{missed}") == ["succeeded"]
            await a.pause(f"tick-{missed}", by="test")
        await trio.sleep(31 * 60)  # the ticks of 00:10 ... 00:35 are held back
        for missed in ("once", "all", "skip"):
            assert len(await _statuses(db, f"tick-{missed}")) == 1
        resumed_at = a.clock.now()
        for missed in ("once", "all", "skip"):
            await a.resume(f"tick-{missed}")
        await _until_finished(db, "tick-once", 2)  # the latest missed tick, once
        await _until_finished(db, "tick-all", 1 + 6)  # all six missed ticks
        await trio.sleep(30)
        assert a.clock.now() - resumed_at < 60  # at the resume, not at the next tick
        assert len(await _statuses(db, "tick-once")) == 2
        assert len(await _statuses(db, "tick-all")) == 7
        assert len(await _statuses(db, "tick-skip")) == 1
        ticks = await db.fetch(
            "SELECT event->'data'->>'tick' AS tick FROM engine_runs WHERE function_id = 'tick-once' "
            "ORDER BY created_at"
        )
        assert [r["tick"] for r in ticks] == ["2026-01-01T00:05:00+00:00", "2026-01-01T00:35:00+00:00"]
        await trio.sleep(EPOCH + 40 * 60 + 30 - a.clock.now())  # and the schedule goes on
        for missed, count in (("once", 3), ("all", 8), ("skip", 2)):
            assert len(await _statuses(db, f"tick-{missed}")) == count


async def test_pausing_an_unknown_function_names_it(db: Database) -> None:
    engine = Engine(db, Registry(), SystemClock(), "cli")
    with pytest.raises(UnknownFunction, match="'nope'"):
        await engine.pause("nope")
    with pytest.raises(UnknownFunction, match="'nope'"):
        await engine.resume("nope")
    assert await engine.paused() == []
