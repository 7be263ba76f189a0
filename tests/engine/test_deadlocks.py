"""Completions never deadlock, and a failed write of an outcome is retried (issue 11).
Real database, the real circuit, virtual time."""

from __future__ import annotations

import trio
import trio.testing

from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.functions import Coalesce, EventTrigger, Function, Registry
from tests.engine.conftest import as_owner, running_engine


async def test_batches_sharing_keys_in_opposite_orders_do_not_deadlock(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """Fan-outs that coalesce into the same queued runs, sent at once in opposite orders
    (the sync's fan-outs do this): their shared rows are written in one order."""
    registry = Registry()

    async def refresh(ctx: Context) -> None:
        return None

    registry.add(Function("refresh", refresh, (EventTrigger("t/r"),), coalesce=Coalesce("data.report")))
    keys = [f"report-{i:03d}" for i in range(60)]
    errors: list[BaseException] = []
    async with running_engine(db, registry, dispatcher=False, scheduler=False) as engine:

        async def send(order: list[str]) -> None:
            try:
                await engine.send([{"name": "t/r", "data": {"report": k}} for k in order])
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)

        for _ in range(15):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, keys)
                nursery.start_soon(send, keys[::-1])
                nursery.start_soon(send, keys[30:] + keys[:30])
    assert errors == []
    assert await db.fetchval("SELECT count(*) FROM engine_runs") == 60  # one queued run per report


async def test_an_outcome_whose_write_hits_a_deadlock_is_written_on_a_retry(
    db: Database, database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    """The first write of the run's outcome is rolled back as a deadlock victim (injected
    by a trigger, nothing mocked): it is retried while the lease is held, so the run that
    succeeded is recorded as such, once, not rescued and run again."""
    await as_owner(
        database_url,
        "CREATE SEQUENCE victim",
        """CREATE FUNCTION deadlock_once() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF nextval('victim') = 1 THEN
               RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
             END IF;
             RETURN NEW;
           END $$""",
        "CREATE TRIGGER deadlock_once BEFORE UPDATE ON engine_runs FOR EACH ROW "
        "WHEN (NEW.status = 'succeeded') EXECUTE FUNCTION deadlock_once()",
        "GRANT ALL ON SEQUENCE victim TO PUBLIC",
    )
    registry = Registry()
    ran: list[int] = []
    failures: list[str] = []

    async def job(ctx: Context) -> str:
        ran.append(ctx.attempt)
        return "done"

    async def on_failure(ctx: Context) -> None:
        failures.append(ctx.data["error"])

    registry.add(Function("job", job, (EventTrigger("t/job"),), on_failure=on_failure))
    async with running_engine(db, registry, scheduler=False, lease_s=15.0, rescue_every_s=5.0) as engine:
        run_id = (await engine.send({"name": "t/job"})).run_ids[0]
        run = await engine.wait_for_run(run_id, 600)
        await trio.sleep(60)  # past the lease: a rescue, had the run been dropped, would show
        run = await engine.get_run(run_id)
    assert run is not None and (run.status, run.attempt, run.output) == ("succeeded", 1, "done")
    assert ran == [1] and failures == []
    assert await db.fetchval("SELECT last_value FROM victim") >= 2  # the write was retried


async def test_a_run_lost_on_its_last_attempt_fails_and_its_on_failure_runs(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    failures: list[str] = []

    async def job(ctx: Context) -> None:
        return None

    async def on_failure(ctx: Context) -> None:
        failures.append(ctx.data["error"])

    registry.add(Function("job", job, (EventTrigger("t/job"),), retries=0, on_failure=on_failure))
    async with running_engine(db, registry, dispatcher=False, lease_clock="host") as dead:
        run_id = (await dead.send({"name": "t/job"})).run_ids[0]
        claimed, _ = await dead.claim(10)  # its only attempt, claimed by a worker that dies
        assert [r.id for r in claimed] == [run_id]
    async with running_engine(db, registry, owner="survivor", rescue_every_s=5, lease_clock="host") as engine:
        run = await engine.wait_for_run(run_id, 600)
        with trio.fail_after(600):
            while not failures:
                await trio.sleep(1)
    assert run.status == "failed" and run.last_error is not None and "worker lost" in run.last_error
    assert failures == [run.last_error]
