"""Fair claims (issue 11): one concurrency key's backlog never hides another key's runs,
and a flood of runs without a key never starves those with one; events for a report
already queued join its run. Real database, the real circuit, virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.errors import EngineError
from deneva.engine.functions import Coalesce, Concurrency, Debounce, EventTrigger, Function, Registry
from tests.engine.conftest import running_engine


def _registry(started: list[str]) -> Registry:
    registry = Registry()

    async def keyed(ctx: Context) -> None:
        started.append(ctx.data["tenant"])

    async def free(ctx: Context) -> None:
        started.append("free")

    registry.add(
        Function(
            "refresh", keyed, (EventTrigger("test/refresh"),), concurrency=Concurrency(2, key="data.tenant")
        )
    )
    registry.add(Function("free", free, (EventTrigger("test/free"),)))
    return registry


async def test_one_tenants_backlog_does_not_hide_another_tenants_run(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    started: list[str] = []
    async with running_engine(db, _registry(started), dispatcher=False, scheduler=False) as sender:
        await sender.send([{"name": "test/refresh", "data": {"tenant": "a"}} for _ in range(5000)])
        await sender.send({"name": "test/refresh", "data": {"tenant": "b"}})
    async with running_engine(db, _registry(started), dispatcher=False, scheduler=False) as engine:
        first, _ = await engine.claim(16)  # one claim cycle
    tenants = sorted(r.event["data"]["tenant"] for r in first)
    assert tenants == ["a", "a", "b"]  # each key up to its limit; b is not behind a's 5,000


async def test_a_flood_of_runs_without_a_key_does_not_starve_keyed_runs(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    started: list[str] = []
    async with running_engine(db, _registry(started), dispatcher=False, scheduler=False) as sender:
        await sender.send([{"name": "test/free"} for _ in range(3000)])
        await sender.send({"name": "test/refresh", "data": {"tenant": "a"}})
        first, _ = await sender.claim(100)
    kinds = [r.function_id for r in first]
    assert len(kinds) == 100 and kinds.count("refresh") == 1  # claimed at once, beside 99 others


async def test_keys_take_turns_when_more_keys_wait_than_a_claim_looks_at(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    started: list[str] = []
    tenants = [f"t{i:04d}" for i in range(450)]  # more than a claim looks at (200)
    async with running_engine(db, _registry(started), dispatcher=False, scheduler=False) as engine:
        await engine.send(
            [{"name": "test/refresh", "data": {"tenant": t}} for t in tenants for _ in range(3)]
        )
        seen: set[str] = set()
        for _ in range(3):  # round-robin: three claims reach every key
            claimed, _ = await engine.claim(1000)
            seen |= {r.event["data"]["tenant"] for r in claimed}
            per_key: dict[str, int] = {}
            for r in claimed:
                per_key[r.event["data"]["tenant"]] = per_key.get(r.event["data"]["tenant"], 0) + 1
            assert max(per_key.values()) <= 2  # never over a key's limit
        assert seen == set(tenants)


async def test_events_for_a_queued_run_of_the_same_key_join_it(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    done: list[int] = []
    gate = trio.Event()

    async def refresh(ctx: Context) -> None:
        await gate.wait()
        done.append(ctx.data["n"])

    registry.add(Function("refresh", refresh, (EventTrigger("test/r"),), coalesce=Coalesce("data.report")))
    async with running_engine(db, registry, scheduler=False) as engine:
        first = await engine.send([{"name": "test/r", "data": {"report": "x", "n": i}} for i in range(10)])
        assert len(set(first.run_ids)) == 1  # ten asks, one queued run
        with trio.fail_after(60):
            while (await engine.get_run(first.run_ids[0])).status != "running":
                await trio.sleep(0.1)
        # While it runs, asks queue one more run, and join that one (the function paused, so
        # that the run stays queued while they arrive).
        await engine.pause("refresh")
        later = [
            await engine.send({"name": "test/r", "data": {"report": "x", "n": 10 + i}}) for i in range(3)
        ]
        assert len({r.run_ids[0] for r in later}) == 1 and later[0].run_ids[0] != first.run_ids[0]
        other = await engine.send({"name": "test/r", "data": {"report": "y", "n": 99}})
        assert other.run_ids[0] not in (first.run_ids[0], later[0].run_ids[0])  # another key
        await engine.resume("refresh")
        gate.set()
        for run_id in (first.run_ids[0], later[0].run_ids[0], other.run_ids[0]):
            assert (await engine.wait_for_run(run_id, 600)).status == "succeeded"
    assert sorted(done) == [0, 10, 99]  # each queued run kept its first event
    assert await db.fetchval("SELECT count(*) FROM engine_runs") == 3


def test_debounce_and_coalesce_do_not_go_together() -> None:
    async def nothing(ctx: Context) -> None:
        return None

    with pytest.raises(EngineError, match="debounce and coalesce"):
        Function("both", nothing, debounce=Debounce(5, key="data.k"), coalesce=Coalesce("data.k"))
