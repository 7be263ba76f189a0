"""The durable engine against the real Postgres, on virtual time (MockClock)."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import pytest
import trio
import trio.testing

from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.context import Context
from deneva.engine.engine import Engine
from deneva.engine.errors import InvalidEvent, NonRetriableError, RetryAfterError, UnknownFunction
from deneva.engine.events import MAX_EVENT_BYTES
from deneva.engine.functions import Backoff, Concurrency, CronTrigger, EventTrigger, Idempotency, Registry
from deneva.engine.model import RunRecord
from tests.engine.conftest import EPOCH, running_engine


async def _finished(engine: Engine, run_id: uuid.UUID, within_s: float = 3600) -> RunRecord:
    record = await engine.wait_for_run(run_id, within_s)
    assert record.status in ("succeeded", "failed", "cancelled"), record
    return record


async def test_noop_run_succeeds_with_a_status_record(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_engine(db, register_builtin(Registry())) as engine:
        result = await engine.send({"name": "deneva/noop", "data": {}})
        assert len(result.run_ids) == 1
        record = await _finished(engine, result.run_ids[0])
    assert record.status == "succeeded" and record.attempt == 1 and record.function_id == "deneva-noop"
    assert record.started_at is not None and record.finished_at is not None and record.duration_ms is not None
    assert record.last_error is None


async def test_one_step_run_records_its_step_output(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with running_engine(db, register_builtin(Registry())) as engine:
        result = await engine.send({"name": "deneva/one-step", "data": {"value": 42}})
        record = await _finished(engine, result.run_ids[0])
    assert record.status == "succeeded" and record.output == 42
    steps = await db.fetch("SELECT step_id, output FROM engine_steps WHERE run_id = $1", result.run_ids[0])
    assert [(s["step_id"], s["output"]) for s in steps] == [("echo", {"value": 42})]


async def test_a_batch_mixing_runs_that_wait_and_runs_that_do_not_finishes_every_run(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """Claimed together, runs start one after another in a shared task; the first that
    waits (for its step to be written) keeps that task, and the rest go on elsewhere."""
    registry = register_builtin(Registry())

    @registry.function("sometimes-waits", EventTrigger("x/sometimes"))
    async def sometimes_waits(ctx: Context) -> int:
        value = int(ctx.data["n"])
        if value % 3 == 0:
            return int(await ctx.step.run("tripled", lambda: value * 3))
        return value

    events = [
        {"name": "x/sometimes", "data": {"n": n}} if n % 2 else {"name": "deneva/noop"} for n in range(40)
    ]
    async with running_engine(db, registry, workers=64, scheduler=False) as engine:
        run_ids = (await engine.send(events)).run_ids
        records = [await _finished(engine, run_id, within_s=60) for run_id in run_ids]
    assert [r.status for r in records] == ["succeeded"] * 40
    odd = [r.output for r in records if r.function_id == "sometimes-waits"]
    assert odd == [n * 3 if n % 3 == 0 else n for n in range(1, 40, 2)]
    assert await db.fetchval("SELECT count(*) FROM engine_steps") == len(range(3, 40, 6))


async def test_runs_that_never_wait_share_the_loop_between_slices(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """A claimed batch of runs that return without suspending is started in one task, in
    slices of about 2 ms: other tasks run in between (HTTP requests, lease upkeep), never
    after the whole batch."""
    registry = register_builtin(Registry())
    started: list[int] = []

    @registry.function("busy", EventTrigger("x/busy"))
    async def busy(ctx: Context) -> int:
        started.append(1)
        until = time.perf_counter() + 0.001  # a millisecond of work without a checkpoint
        while time.perf_counter() < until:
            pass
        return len(started)

    seen: list[int] = []

    async def watch() -> None:
        while len(started) < 40:
            seen.append(len(started))
            await trio.lowlevel.checkpoint()

    async with running_engine(db, registry, workers=64, scheduler=False) as engine:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch)
            run_ids = (await engine.send([{"name": "x/busy"}] * 40)).run_ids
        records = [await _finished(engine, run_id, within_s=60) for run_id in run_ids]
    assert [r.status for r in records] == ["succeeded"] * 40
    # 40 runs of 1 ms: in slices of ~2 ms the watcher sees them start a few at a time.
    steps = [b - a for a, b in itertools.pairwise([*seen, 40])]
    assert max(steps) <= 10, steps


async def test_duplicate_event_ids_are_no_ops(db: Database, autojump_clock: trio.testing.MockClock) -> None:
    async with running_engine(db, register_builtin(Registry())) as engine:
        first = await engine.send({"name": "deneva/noop", "id": "evt-1"})
        second = await engine.send({"name": "deneva/noop", "id": "evt-1"})
    assert len(first.run_ids) == 1 and second.run_ids == () and second.new_event_ids == ()
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 1


async def test_ten_concurrent_identical_events_with_one_idempotency_key_make_one_run(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    calls = []

    @registry.function("send-message", EventTrigger("msg/send"), idempotency=Idempotency("data.message_id"))
    async def send_message(ctx: Context) -> None:
        calls.append(ctx.data["message_id"])

    async with running_engine(db, registry) as engine:
        results = []

        async def one() -> None:
            results.append(await engine.send({"name": "msg/send", "data": {"message_id": "m-1"}}))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(one)
        run_ids = [r for res in results for r in res.run_ids]
        assert len(run_ids) == 1
        await _finished(engine, run_ids[0])
    assert calls == ["m-1"]
    assert await db.fetchval("SELECT count(*) FROM engine_runs") == 1
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 10


async def test_concurrency_key_with_limit_one_never_runs_two_at_once(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    in_flight = {"now": 0, "max": 0}

    @registry.function("per-phone", EventTrigger("call/start"), concurrency=Concurrency(1, key="data.phone"))
    async def per_phone(ctx: Context) -> None:
        async def call() -> None:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
            await trio.sleep(5)
            in_flight["now"] -= 1

        await ctx.step.run("call", call)

    async with running_engine(db, registry, workers=16) as engine:
        result = await engine.send([{"name": "call/start", "data": {"phone": "+1555"}} for _ in range(5)])
        records = [await _finished(engine, run_id) for run_id in result.run_ids]
    assert [r.status for r in records] == ["succeeded"] * 5
    assert in_flight["max"] == 1


async def test_a_finished_run_starts_the_next_one_of_its_key_at_once(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    """Not at the next poll (30 s here): finishing frees the key's slot and wakes the dispatcher."""
    registry = Registry()
    started: list[float] = []
    finished: list[float] = []

    @registry.function("one-at-a-time", EventTrigger("x/one"), concurrency=Concurrency(1, key="data.k"))
    async def one(ctx: Context) -> None:
        started.append(trio.current_time())
        await trio.sleep(5)
        finished.append(trio.current_time())

    async with running_engine(db, registry, workers=4, poll_s=30) as engine:
        result = await engine.send([{"name": "x/one", "data": {"k": "a"}} for _ in range(3)])
        records = [await _finished(engine, run_id) for run_id in result.run_ids]
    assert [r.status for r in records] == ["succeeded"] * 3
    gaps = [nxt - end for end, nxt in zip(sorted(finished), sorted(started)[1:], strict=False)]
    assert len(gaps) == 2 and max(gaps) < 1.0, gaps


async def test_always_failing_function_makes_four_attempts_then_on_failure_once(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    attempts: list[float] = []
    failures: list[dict[str, Any]] = []

    async def on_failure(ctx: Context) -> None:
        failures.append(ctx.data)

    @registry.function(
        "always-fails",
        EventTrigger("x/go"),
        backoff=Backoff(base_s=10, factor=2, max_s=1000, jitter=0),
        on_failure=on_failure,
    )
    async def always_fails(ctx: Context) -> None:
        attempts.append(trio.current_time())
        raise RuntimeError("platform down")

    async with running_engine(db, registry) as engine:
        result = await engine.send({"name": "x/go"})
        record = await _finished(engine, result.run_ids[0])
        with trio.fail_after(600):
            while not failures:
                await trio.sleep(1)
        await trio.sleep(600)  # nothing else happens afterwards
    assert record.status == "failed" and record.attempt == 4
    assert record.last_error == "RuntimeError: platform down"
    gaps = [round(b - a) for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 4 and gaps[0] >= 10 and gaps[0] < gaps[1] < gaps[2]
    assert len(failures) == 1
    assert (
        failures[0]["function_id"] == "always-fails" and failures[0]["error"] == "RuntimeError: platform down"
    )


async def test_a_failed_attempt_keeps_its_traceback_on_the_record_and_in_the_log(
    db: Database, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()
    huge = "x" * 50_000

    def parse_amount(text: str) -> int:
        return int(text)  # the frame the traceback must show

    @registry.function("flaky", EventTrigger("x/flaky"), retries=1, backoff=Backoff(base_s=5, jitter=0))
    async def flaky(ctx: Context) -> None:
        if ctx.attempt == 1:
            parse_amount("twelve")
        raise RuntimeError(huge)

    with caplog.at_level("INFO", logger="deneva.engine.run"):
        async with running_engine(db, registry) as engine:
            run_id = (await engine.send({"name": "x/flaky"})).run_ids[0]
            with trio.fail_after(60):
                while (retried := await engine.get_run(run_id)).attempt < 1 or retried.status == "running":
                    await trio.sleep(0.5)
            record = await _finished(engine, run_id)
    # After the first attempt: queued for a retry, with the error and where it happened.
    assert retried.status == "queued" and retried.last_error is not None
    assert "ValueError: invalid literal for int()" in (retried.last_traceback or "")
    assert "in parse_amount" in (retried.last_traceback or "")
    # After the last: the last attempt's, bounded (the end kept: where the error is).
    assert record.status == "failed" and record.last_traceback is not None
    assert record.last_traceback.startswith("...\n") and len(record.last_traceback) <= 8_004
    assert record.last_traceback.rstrip().endswith("x" * 100)
    assert record.last_error is not None and len(record.last_error) <= 2_000
    logged = [r for r in caplog.records if r.getMessage().startswith(("attempt failed", "run failed"))]
    assert [r.exc_info is not None and r.exc_info[0] for r in logged] == [ValueError, RuntimeError]
    assert all(r.run_id == str(run_id) for r in logged)  # type: ignore[attr-defined]


async def test_non_retriable_error_fails_after_one_attempt(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()

    @registry.function("fatal", EventTrigger("x/fatal"))
    async def fatal(ctx: Context) -> None:
        raise NonRetriableError("token revoked")

    async with running_engine(db, registry) as engine:
        record = await _finished(engine, (await engine.send({"name": "x/fatal"})).run_ids[0])
    assert record.status == "failed" and record.attempt == 1 and "token revoked" in (record.last_error or "")


async def test_retry_after_error_waits_at_least_the_given_delay(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    attempts: list[float] = []

    @registry.function("limited", EventTrigger("x/limited"))
    async def limited(ctx: Context) -> str:
        attempts.append(trio.current_time())
        if len(attempts) == 1:
            raise RetryAfterError("429 from platform", 60)
        return "ok"

    async with running_engine(db, registry) as engine:
        record = await _finished(engine, (await engine.send({"name": "x/limited"})).run_ids[0])
    assert record.status == "succeeded" and record.attempt == 2
    assert attempts[1] - attempts[0] >= 60


async def test_completed_steps_are_not_re_executed_on_retry(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    executed: list[str] = []

    @registry.function("two-steps", EventTrigger("x/two"), backoff=Backoff(base_s=1, jitter=0))
    async def two_steps(ctx: Context) -> int:
        def first_step() -> int:
            executed.append("first")
            return 1

        first = await ctx.step.run("first", first_step)

        def second() -> int:
            executed.append("second")
            if executed.count("second") == 1:
                raise RuntimeError("flaky")
            return 2

        return int(first) + int(await ctx.step.run("second", second))

    async with running_engine(db, registry) as engine:
        record = await _finished(engine, (await engine.send({"name": "x/two"})).run_ids[0])
    assert record.status == "succeeded" and record.output == 3 and record.attempt == 2
    assert executed == ["first", "second", "second"]


async def test_wait_for_event_resolves_on_a_match_and_ignores_others(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()

    @registry.function("approval", EventTrigger("order/placed"))
    async def approval(ctx: Context) -> Any:
        return await ctx.step.wait_for_event(
            "approved", event="order/approved", match="data.order_id", timeout_s=3600
        )

    async with running_engine(db, registry) as engine:
        run_id = (await engine.send({"name": "order/placed", "data": {"order_id": "o-1"}})).run_ids[0]
        with trio.fail_after(60):
            while (await engine.get_run(run_id)).status != "waiting":
                await trio.sleep(0.5)
        await engine.send({"name": "order/approved", "data": {"order_id": "o-2"}})  # not ours
        await trio.sleep(30)
        assert (await engine.get_run(run_id)).status == "waiting"
        await engine.send({"name": "order/approved", "data": {"order_id": "o-1", "by": "ann"}})
        record = await _finished(engine, run_id)
    assert record.status == "succeeded"
    assert record.output["name"] == "order/approved" and record.output["data"]["by"] == "ann"


async def test_wait_for_event_times_out_to_none(db: Database, autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry()

    @registry.function("approval", EventTrigger("order/placed"))
    async def approval(ctx: Context) -> Any:
        found = await ctx.step.wait_for_event("approved", event="order/approved", timeout_s=600)
        return {"found": found}

    async with running_engine(db, registry) as engine:
        start = trio.current_time()
        run_id = (await engine.send({"name": "order/placed", "data": {}})).run_ids[0]
        record = await _finished(engine, run_id)
    assert record.output == {"found": None}
    assert trio.current_time() - start >= 600


async def test_event_sent_after_the_run_started_but_before_the_wait_is_found(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()

    @registry.function("early", EventTrigger("job/start"))
    async def early(ctx: Context) -> Any:
        # The confirmation is sent from inside the run, before the wait exists.
        await ctx.step.send_event("confirm", {"name": "job/confirmed", "data": {"job": ctx.data["job"]}})
        return await ctx.step.wait_for_event(
            "confirmed", event="job/confirmed", match="data.job", timeout_s=60
        )

    async with running_engine(db, registry) as engine:
        run_id = (await engine.send({"name": "job/start", "data": {"job": "j-7"}})).run_ids[0]
        start = trio.current_time()
        record = await _finished(engine, run_id)
    assert record.output is not None and record.output["data"] == {"job": "j-7"}
    assert trio.current_time() - start < 60  # found, not timed out


async def test_sleep_holds_no_slot_and_resumes(db: Database, autojump_clock: trio.testing.MockClock) -> None:
    registry = Registry()
    ran: list[str] = []

    @registry.function("sleeper", EventTrigger("x/sleep"))
    async def sleeper(ctx: Context) -> str:
        await ctx.step.run("before", lambda: ran.append("before"))
        await ctx.step.sleep("nap", 3600)
        await ctx.step.run("after", lambda: ran.append("after"))
        return "done"

    async with running_engine(db, registry, workers=1) as engine:
        started = trio.current_time()
        sleepy = (await engine.send({"name": "x/sleep"})).run_ids[0]
        with trio.fail_after(60):
            while (await engine.get_run(sleepy)).status != "sleeping":
                await trio.sleep(0.5)
        # One worker, held by nobody while the run sleeps: another run goes through.
        register_builtin(registry)
        noop = (await engine.send({"name": "deneva/noop"})).run_ids[0]
        assert (await _finished(engine, noop, within_s=60)).status == "succeeded"
        record = await _finished(engine, sleepy)
    assert record.output == "done" and ran == ["before", "after"]
    assert trio.current_time() - started >= 3600


async def test_cancel_stops_a_sleeping_run_and_a_running_one_at_its_next_step(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    reached: list[str] = []
    release = trio.Event()

    @registry.function("long", EventTrigger("x/long"))
    async def long(ctx: Context) -> None:
        await ctx.step.sleep("nap", 3600)

    @registry.function("busy", EventTrigger("x/busy"))
    async def busy(ctx: Context) -> None:
        async def first() -> None:
            reached.append("first")
            await release.wait()

        await ctx.step.run("first", first)
        await ctx.step.run("second", lambda: reached.append("second"))

    async with running_engine(db, registry) as engine:
        sleeping = (await engine.send({"name": "x/long"})).run_ids[0]
        running = (await engine.send({"name": "x/busy"})).run_ids[0]
        with trio.fail_after(60):
            while (await engine.get_run(sleeping)).status != "sleeping" or not reached:
                await trio.sleep(0.5)
        assert await engine.cancel(sleeping) == "cancelled"
        assert await engine.cancel(running) == "cancelling"
        release.set()
        records = [await _finished(engine, r) for r in (sleeping, running)]
    assert [r.status for r in records] == ["cancelled", "cancelled"]
    assert reached == ["first"]


async def test_retry_requeues_a_failed_run_keeping_its_steps(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    fail = {"on": True}
    executed: list[str] = []

    @registry.function("resumable", EventTrigger("x/resume"), retries=0)
    async def resumable(ctx: Context) -> str:
        await ctx.step.run("download", lambda: executed.append("download"))
        if fail["on"]:
            raise RuntimeError("parse failed")
        return "parsed"

    async with running_engine(db, registry) as engine:
        run_id = (await engine.send({"name": "x/resume"})).run_ids[0]
        assert (await _finished(engine, run_id)).status == "failed"
        fail["on"] = False
        assert await engine.retry(run_id) == "queued"
        record = await _finished(engine, run_id)
    assert record.status == "succeeded" and executed == ["download"]


async def test_cron_fires_each_tick_once_for_a_day_even_with_two_schedulers(
    db: Database, database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    ticks: list[str] = []

    @registry.function("every-5-min", CronTrigger("*/5 * * * *"))
    async def every_5_min(ctx: Context) -> None:
        ticks.append(ctx.data["tick"])

    @registry.function("paris-9am", CronTrigger("0 9 * * *", timezone="Europe/Paris"))
    async def paris(ctx: Context) -> None:
        ticks.append("paris " + ctx.data["tick"])

    replica = await Database.open(database_url)  # the second scheduler: another process's pool
    async with (
        running_engine(db, registry, owner="a", poll_s=600, rescue_every_s=3600) as engine,
        running_engine(replica, registry, owner="b", dispatcher=False, poll_s=600, rescue_every_s=3600),
    ):
        await trio.sleep(24 * 3600)
        await trio.sleep(120)  # let the last runs finish
        assert engine.clock.now() >= EPOCH + 24 * 3600
    await replica.close()
    five = [t for t in ticks if not t.startswith("paris")]
    assert len(five) == 288 and len(set(five)) == 288
    assert [t for t in ticks if t.startswith("paris")] == ["paris 2026-01-01T08:00:00+00:00"]
    assert await db.fetchval("SELECT count(*) FROM engine_cron_ticks") == 289


async def test_orphaned_run_is_requeued_and_finished_within_30_s(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = register_builtin(Registry())
    # Leases on the engine's (virtual) clock: the one that expires is measured in it.
    async with running_engine(db, registry, dispatcher=False, lease_clock="host") as dead:
        run_id = (await dead.send({"name": "deneva/noop"})).run_ids[0]
        claimed, _ = await dead.claim(10)  # claimed by a worker that then dies
        assert [r.id for r in claimed] == [run_id]
    start = trio.current_time()
    async with running_engine(db, registry, owner="survivor", rescue_every_s=5, lease_clock="host") as engine:
        record = await _finished(engine, run_id, within_s=30)
    assert record.status == "succeeded"
    assert trio.current_time() - start <= 30


async def test_bad_input_is_named(db: Database, autojump_clock: trio.testing.MockClock) -> None:
    registry = register_builtin(Registry())

    @registry.function("keyed", EventTrigger("x/keyed"), concurrency=Concurrency(1, key="data.tenant"))
    async def keyed(ctx: Context) -> None:
        return None

    async with running_engine(db, registry) as engine:
        with pytest.raises(UnknownFunction, match="unknown function 'nope'"):
            await engine.invoke("nope")
        with pytest.raises(InvalidEvent, match="event.name"):
            await engine.send({"name": "", "data": {}})
        with pytest.raises(InvalidEvent, match="event.data: expected a JSON object"):
            await engine.send({"name": "x/y", "data": [1, 2]})
        with pytest.raises(InvalidEvent, match="over the limit"):
            await engine.send({"name": "x/y", "data": {"blob": "x" * MAX_EVENT_BYTES}})
        with pytest.raises(InvalidEvent, match=r"events\[1\].ts"):
            await engine.send([{"name": "x/y"}, {"name": "x/y", "ts": "yesterday"}])
        # A key field missing from the event: the event is kept, the error is reported.
        result = await engine.send({"name": "x/keyed", "data": {}})
    assert result.run_ids == () and result.new_event_ids
    assert result.errors == ("keyed concurrency key: event 'x/keyed' has no field 'data.tenant'",)
