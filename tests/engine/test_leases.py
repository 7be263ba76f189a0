"""Lease fencing (issue 11): a per-claim lease token fences every write a worker makes
for a run; leases end on the database's clock; a worker that loses a lease cancels its
local work; lease upkeep has a connection of its own. Real database, the real engine."""

from __future__ import annotations

import time

import trio
import trio.testing

from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.context import Context, LeaseLost
from deneva.engine.engine import Engine, EngineSettings
from deneva.engine.functions import EventTrigger, Function, Registry
from deneva.engine.model import Transition
from tests.engine.conftest import running_engine

EXPIRE_LEASES = (
    "UPDATE engine_runs SET lease_expires_at = now() - interval '1 second' WHERE status = 'running'"
)


async def test_a_worker_whose_run_was_claimed_again_writes_nothing_even_under_the_same_name(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """The same process (same host, port, pid: the same owner name) claims a run, loses its
    lease, and claims the run again: the first claim's writes are refused, the second's go."""
    registry = register_builtin(Registry())
    async with (
        running_engine(db, registry, owner="host:1:42", dispatcher=False, scheduler=False) as engine,
        trio.open_nursery() as nursery,
    ):
        await nursery.start(engine.run_writers)
        run_id = (await engine.send({"name": "deneva/noop"})).run_ids[0]
        (stale,), _ = await engine.claim(10)
        await db.execute(EXPIRE_LEASES)  # the lease ran out (a long pause, say)
        assert await engine.rescue_orphans() == 1
        (fresh,), _ = await engine.claim(10)  # claimed again, by the same name
        assert fresh.id == stale.id == run_id and fresh.lease != stale.lease
        stale_engine = Engine(db, registry, engine.clock, "host:1:42")  # the first claim's view
        assert stale.lease is not None
        stale_engine.held[run_id] = stale.lease
        await nursery.start(stale_engine.run_writers)
        try:
            await stale_engine.record_step(run_id, "one", 1)
            raise AssertionError("a stale lease wrote a step")
        except LeaseLost:
            pass
        done = Transition(run_id, "succeeded", output="stale", finished_at=engine.clock.now())
        assert await stale_engine.complete(done) is None  # fenced: nothing written
        record = await engine.get_run(run_id)
        assert record is not None and record.status == "running"
        assert await db.fetchval("SELECT count(*) FROM engine_steps") == 0
        ok = Transition(run_id, "succeeded", output="fresh", finished_at=engine.clock.now())
        assert await engine.complete(ok) == "succeeded"
        nursery.cancel_scope.cancel()
    record = await engine.get_run(run_id)
    assert record is not None and record.output == "fresh"


async def test_a_replica_whose_clock_runs_ahead_rescues_no_live_run(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = register_builtin(Registry())
    async with running_engine(db, registry, dispatcher=False, scheduler=False) as engine:
        await engine.send({"name": "deneva/noop"})
        claimed, _ = await engine.claim(10)  # leased for 15 s on the database's clock
        assert len(claimed) == 1
    an_hour_ahead = TrioClock(time.time() + 3600 - trio.current_time())  # of the real time
    ahead = Engine(db, registry, an_hour_ahead, "ahead", EngineSettings())
    assert await ahead.rescue_orphans() == 0  # an hour ahead, and still no rescue
    host = Engine(db, registry, ahead.clock, "ahead", EngineSettings(lease_clock="host"))
    assert await host.rescue_orphans() == 1  # what a host-clock rescue would have done


async def test_a_worker_that_loses_its_lease_cancels_the_runs_local_work(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    started, stopped = trio.Event(), trio.Event()

    async def forever(ctx: Context) -> None:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            stopped.set()

    registry.add(Function("forever", forever, (EventTrigger("t/forever"),)))
    async with running_engine(db, registry, scheduler=False) as engine:
        run_id = (await engine.send({"name": "t/forever"})).run_ids[0]
        await started.wait()
        # Another worker has the run now (rescued and claimed again: a new token).
        await db.execute("UPDATE engine_runs SET lease_token = gen_random_uuid() WHERE id = $1", run_id)
        with trio.fail_after(60):  # the next renewal (every lease_s / 3) finds out
            await stopped.wait()
        assert engine.leases_lost == 1 and not engine.holds(run_id)
        record = await engine.get_run(run_id)
    assert record is not None and record.status == "running"  # the other worker's to finish


async def test_lease_upkeep_is_not_starved_by_a_pool_that_is_all_busy(
    db: Database, database_url: str
) -> None:
    """Every pooled connection is busy (a 5 s statement each): the lease renewal and the
    rescue still run at once, on the upkeep connection. Real time: the 2 s deadline only
    catches an upkeep that waits for the pool."""
    registry = register_builtin(Registry())
    pool = await Database.open(database_url, min_size=2, max_size=2)
    owner = await Database.open(database_url, role=None, min_size=1, max_size=1)  # sees all sessions
    engine = Engine(pool, registry, TrioClock(0.0), "busy")
    try:
        await engine.send({"name": "deneva/noop"})
        (run,), _ = await engine.claim(10)
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(pool.execute, "SELECT pg_sleep(5) /* busy */")
            with trio.fail_after(5):
                while await owner.fetchval(BUSY) < 2:
                    await trio.sleep(0.01)
            with trio.fail_after(2):
                assert await engine.renew_leases() == 1
                assert await engine.rescue_orphans() == 0
        assert engine.holds(run.id)
    finally:
        await pool.close()
        await owner.close()


BUSY = (
    "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5) /* busy */' AND state = 'active'"
)
