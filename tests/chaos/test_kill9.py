"""kill -9 of the daemon during in-flight durable runs, several times in a row (SPEC §14):
after the restarts every run succeeds, none is lost, and no step whose result was
recorded runs again (the side-effect table says so; tests/chaos/functions.py)."""

from __future__ import annotations

import functools
from pathlib import Path

import trio

from tests.chaos.harness import (
    ChaosDatabase,
    Figure,
    effect_events,
    fleet,
    poll,
    record_figure,
    scale,
)

RUNS = scale(200, 1_000)
KILLS = scale(2, 5)
HOLD_S = 0.5  # step two of each run holds this long: kills land inside it
# Few enough workers that the runs take several seconds: the kills land while most are
# queued and some executing.
WORKERS = scale(40, 100)
# A run whose worker was killed is re-queued once its lease (15 s) expired and a rescue
# pass (every 5 s) saw it; then it runs in about HOLD_S.
SETTLE_S = 90.0


async def _succeeded(db: ChaosDatabase, prefix: str) -> int:
    return int(
        await db.value(
            "SELECT count(*) FROM engine_runs WHERE function_id = 'chaos-effect' AND status = 'succeeded' "
            "AND event->>'id' LIKE $1",
            f"{prefix}-%",
        )
    )


async def test_kill9_during_in_flight_runs_loses_nothing_and_reruns_no_recorded_step(
    tmp_path: Path, chaos_db: ChaosDatabase
) -> None:
    db = chaos_db
    async with fleet(tmp_path, db, DENEVA_WORKERS=str(WORKERS)) as group:
        daemon = await group.start("a")

        # Baseline: the same load without faults.
        began = trio.current_time()
        await group.send(daemon, effect_events(RUNS, hold_s=HOLD_S, prefix="base"))
        await poll(lambda: _at_least(db, "base", RUNS), 60, f"{RUNS} baseline runs succeeded")
        baseline = RUNS / (trio.current_time() - began)

        began = trio.current_time()
        acked = await group.send(daemon, effect_events(RUNS, hold_s=HOLD_S, prefix="chaos"))
        assert len(set(acked)) == RUNS
        recoveries: list[float] = []
        in_flight_at_kill: list[int] = []
        for kill in range(KILLS):
            # Kill once more work got done since the last restart, with runs in flight.
            target = (kill + 1) * RUNS // (KILLS + 2)
            await poll(
                functools.partial(_at_least, db, "chaos", target),
                60,
                f"{target} runs succeeded before kill {kill}",
            )
            running = int(await db.value("SELECT count(*) FROM engine_runs WHERE status = 'running'"))
            in_flight_at_kill.append(running)
            done_before = await _succeeded(db, "chaos")
            killed_at = trio.current_time()
            await daemon.kill()
            daemon = await group.start("a")
            await poll(
                functools.partial(_at_least, db, "chaos", done_before + 1),
                60,
                f"a run succeeded after kill {kill}",
            )
            recoveries.append(trio.current_time() - killed_at)
        last_kill = trio.current_time()
        await poll(
            lambda: _at_least(db, "chaos", RUNS), SETTLE_S, f"all {RUNS} runs succeeded after the kills"
        )
        settled_s = trio.current_time() - last_kill
        chaos_rate = RUNS / (trio.current_time() - began)

        counts = await db.run_counts("chaos-effect")
        audit = await db.effect_audit()
        assert counts == {"succeeded": 2 * RUNS}, counts
        assert audit.recorded_reruns == 0, audit
        assert audit.complete_runs == 2 * RUNS, audit
        # The kills really landed on runs in flight, which were rescued and went on past
        # their recorded step in another process.
        assert all(n > 0 for n in in_flight_at_kill), in_flight_at_kill
        assert audit.rescued_runs > 0 and audit.resumed_past_recorded_step > 0, audit
        assert await daemon.stop() == 0

    record_figure(
        Figure(
            f"kill -9 x{KILLS} during {RUNS} runs",
            recovery_s=max(recoveries),
            runs_lost=RUNS - (counts.get("succeeded", 0) - RUNS),
            duplicate_steps=audit.recorded_reruns,
            throughput_ratio=chaos_rate / baseline,
            notes=(
                f"in flight at kills {in_flight_at_kill}; {audit.rescued_runs} rescued; "
                f"{audit.repeated_executions} unrecorded steps re-run; "
                f"all done {settled_s:.1f} s after the last restart"
            ),
        )
    )


async def _at_least(db: ChaosDatabase, prefix: str, count: int) -> bool:
    return await _succeeded(db, prefix) >= count
