"""Two replicas on one database (SPEC §14): over a compressed day no cron tick fires
twice and none is missed; kill -9 one and the other does all the work within 30 s; a
rolling restart (stop one, start a new one, stop the other) loses nothing and leaves no
run stuck. And a replica whose clock runs 60 s ahead rescues no live run.

The day is compressed (docs/RELIABILITY.md): `CHAOS_MINUTE_CRONS` functions fire every
minute, so each minute boundary carries as many ticks as that many minutes of one
every-minute cron (240 functions x 6 boundaries = a day's 1,440 under `make chaos`), and
both replicas' clocks are set (`clock_offset_s`) so that the first boundary they meet
is midnight UTC, where the hourly and daily crons fire too.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import trio

from tests.chaos.harness import (
    ChaosDatabase,
    Figure,
    Load,
    Replica,
    effect_events,
    fleet,
    poll,
    record_figure,
    scale,
)

MINUTE_CRONS = scale(60, 240)
BOUNDARIES = scale(1, 6)
LEAD_S = 15.0  # real seconds from the test's start to the first (midnight) boundary
TAKEOVER_BOUND_S = 30.0  # the bound: asserted as it is
HELD_RUNS = 60  # runs held by the replica that is killed


def _offset_to_midnight(lead_s: float) -> float:
    """The clock offset under which midnight UTC comes `lead_s` seconds from now."""
    now = time.time()
    midnight = (math.floor((now + lead_s) / 86_400) + 1) * 86_400
    return midnight - (now + lead_s)


async def _ticks_recorded(db: ChaosDatabase, expected: int) -> bool:
    return int(await db.value("SELECT count(*) FROM chaos_ticks")) >= expected


async def _owned_by(db: ChaosDatabase, replica: Replica) -> int:
    return int(
        await db.value(
            "SELECT count(*) FROM engine_runs WHERE status = 'running' AND lease_owner LIKE $1",
            f"%:{replica.port}:%",
        )
    )


async def _unfinished(db: ChaosDatabase, prefix: str) -> int:
    return int(
        await db.value(
            "SELECT count(*) FROM engine_runs WHERE function_id = 'chaos-effect' AND event->>'id' LIKE $1 "
            "AND status NOT IN ('succeeded', 'failed', 'cancelled')",
            f"{prefix}%",
        )
    )


async def test_two_replicas_a_compressed_day_a_kill_and_a_rolling_restart(
    tmp_path: Path, chaos_db: ChaosDatabase
) -> None:
    db = chaos_db
    offset = _offset_to_midnight(LEAD_S)
    first_boundary = time.time() + LEAD_S
    env = {
        "CHAOS_MINUTE_CRONS": str(MINUTE_CRONS),
        "CHAOS_DAY_CRONS": "1",
        "DENEVA_CLOCK_OFFSET_S": f"{offset:.3f}",
        "DENEVA_WORKERS": "64",
    }
    async with fleet(tmp_path, db, **env) as group, trio.open_nursery() as nursery:
        replicas: list[Replica] = []

        async def start(name: str) -> None:
            replicas.append(await group.start(name))

        async with trio.open_nursery() as starting:
            starting.start_soon(start, "a")
            starting.start_soon(start, "b")
        a, b = sorted(replicas, key=lambda r: r.name)
        # A boundary passed before either scheduler ran is never due (there is no earlier
        # tick to catch up from): the case needs both running before it.
        assert time.time() < first_boundary - 1, f"the replicas took {a.started_s:.1f} s to start"

        # The compressed day: every boundary's ticks, each exactly once.
        expected = MINUTE_CRONS * BOUNDARIES + 2  # + the hourly and the daily at midnight
        await poll(
            functools.partial(_ticks_recorded, db, expected),
            LEAD_S + 60 * (BOUNDARIES - 1) + 60,
            f"{expected} cron ticks ran",
            every_s=0.5,
        )
        twice = await db.value(
            "SELECT count(*) FROM (SELECT function_id, tick_at FROM chaos_ticks GROUP BY 1, 2 "
            "HAVING count(*) > 1) AS doubled"
        )
        assert twice == 0
        per_function = await db.query(
            "SELECT function_id, count(DISTINCT tick_at) AS ticks FROM chaos_ticks GROUP BY 1"
        )
        minute_counts = {r["ticks"] for r in per_function if r["function_id"].startswith("chaos-minute-")}
        assert len(per_function) == MINUTE_CRONS + 2 and minute_counts == {BOUNDARIES}, per_function
        daily = await db.query(
            "SELECT tick_at FROM chaos_ticks WHERE function_id IN ('chaos-daily', 'chaos-hourly')"
        )
        assert len(daily) == 2 and all(r["tick_at"].hour == 0 and r["tick_at"].minute == 0 for r in daily)
        runners = int(await db.value("SELECT count(DISTINCT pid) FROM chaos_ticks"))
        assert int(await db.value("SELECT count(*) FROM chaos_ticks")) == expected

        # kill -9 of one replica holding runs: the other does all of it within 30 s.
        # Either replica may claim them (both hear the NOTIFY): the one holding more is killed.
        await group.send(a, effect_events(HELD_RUNS, hold_s=5.0, prefix="held"))
        await poll(lambda: _held(db, a, b), 15, "a replica holds runs")
        held = {r.name: await _owned_by(db, r) for r in (a, b)}
        victim, survivor = (a, b) if held["a"] >= held["b"] else (b, a)
        killed_at = trio.current_time()
        await victim.kill()
        await poll(
            lambda: _no_unfinished(db, "held"), TAKEOVER_BOUND_S, "the survivor finished every held run"
        )
        takeover_s = trio.current_time() - killed_at
        held_audit = await db.effect_audit()
        assert held_audit.recorded_reruns == 0, held_audit
        assert held[victim.name] <= held_audit.rescued_runs <= HELD_RUNS, (held, held_audit)
        assert survivor.alive

        # Rolling restart under load: a second replica joins, then stop one, start a new
        # one, stop the other. Nothing lost, no run stuck, none left for a rescue.
        stop_load = trio.Event()
        c = await group.start("c")
        targets = [survivor, c]
        load = Load(group, targets, hold_s=0.3, prefix="roll")
        nursery.start_soon(load.run, stop_load)
        await poll(lambda: _succeeded_count(db, "roll", 50), 30, "the load is running")
        assert await survivor.stop() == 0
        d = await group.start("d")
        targets.append(d)
        await poll(
            lambda: _succeeded_count(db, "roll", 150), 30, "the load goes on after the survivor stopped"
        )
        assert await c.stop() == 0
        await poll(lambda: _succeeded_count(db, "roll", 250), 30, "the load goes on after c stopped")
        stop_load.set()
        stopped_at = trio.current_time()
        await poll(lambda: _all_acked(db, load), 30, f"all {len(load.acked)} acknowledged runs succeeded")
        settle_s = trio.current_time() - stopped_at
        assert await _unfinished(db, "roll") == 0
        rescued = await db.value(
            "SELECT count(*) FROM engine_runs WHERE event->>'id' LIKE 'roll%' "
            "AND last_error LIKE 'worker lost%'"
        )
        assert rescued == 0, "a graceful stop left runs for a rescue"
        audit = await db.effect_audit()
        assert audit.recorded_reruns == 0, audit
        assert await d.stop() == 0
        nursery.cancel_scope.cancel()

    record_figure(
        Figure(
            f"two replicas: {expected} ticks over {BOUNDARIES} boundaries",
            runs_lost=0,
            duplicate_steps=int(twice),
            notes=f"ticks doubled {twice}, missed 0; run by {runners} processes",
        )
    )
    record_figure(
        Figure(
            "two replicas: kill -9 one",
            recovery_s=takeover_s,
            runs_lost=0,
            duplicate_steps=held_audit.recorded_reruns,
            notes=f"{held[victim.name]} runs held by the killed replica, all done by the other (bound 30 s)",
        )
    )
    record_figure(
        Figure(
            "two replicas: rolling restart",
            recovery_s=settle_s,
            runs_lost=0,
            duplicate_steps=audit.recorded_reruns,
            notes=f"{len(load.acked)} runs acked, 0 rescued, 0 stuck; recovery: settling after the load",
        )
    )


async def _held(db: ChaosDatabase, *replicas: Replica) -> bool:
    return any([await _owned_by(db, r) for r in replicas])


async def _no_unfinished(db: ChaosDatabase, prefix: str) -> bool:
    return await _unfinished(db, prefix) == 0


async def _succeeded_count(db: ChaosDatabase, prefix: str, at_least: int) -> bool:
    done = await db.value(
        "SELECT count(*) FROM engine_runs WHERE function_id = 'chaos-effect' AND status = 'succeeded' "
        "AND event->>'id' LIKE $1",
        f"{prefix}%",
    )
    return int(done) >= at_least


async def _all_acked(db: ChaosDatabase, load: Load) -> bool:
    return await load.missing(db) == 0


async def test_a_replica_whose_clock_runs_60_s_ahead_rescues_no_live_run(
    tmp_path: Path, chaos_db: ChaosDatabase
) -> None:
    db = chaos_db
    runs, hold_s = scale(20, 100), scale(20.0, 40.0)  # longer than a lease (15 s): renewals matter
    async with fleet(tmp_path, db, DENEVA_WORKERS="128") as group:
        on_time = await group.start("on-time")
        ahead = await group.start("ahead", DENEVA_CLOCK_OFFSET_S="60")
        await group.send(on_time, effect_events(runs, hold_s=hold_s, prefix="live"))
        await poll(
            lambda: _succeeded_count(db, "live", runs),
            hold_s + 60,
            f"all {runs} long runs succeeded",
            every_s=0.5,
        )
        rows = await db.query(
            "SELECT attempt, last_error FROM engine_runs WHERE function_id = 'chaos-effect'"
        )
        assert all(r["attempt"] == 1 and r["last_error"] is None for r in rows), rows
        audit = await db.effect_audit()
        assert audit.rescued_runs == 0 and audit.repeated_executions == 0, audit
        assert on_time.alive and ahead.alive
        assert await ahead.stop() == 0 and await on_time.stop() == 0
    record_figure(
        Figure(
            "replica clock 60 s ahead",
            runs_lost=0,
            duplicate_steps=audit.recorded_reruns,
            notes=f"{runs} runs of {hold_s:.0f} s (> the 15 s lease): 0 rescued, 0 re-run",
        )
    )
