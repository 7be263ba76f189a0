"""Postgres down across a cron tick (seed 003: no dead zone): when the database returns,
the tick fires, once, per the function's missed-tick policy.

The daemon's clock is set (`clock_offset_s`) so that a minute boundary comes a few
seconds after its start; the database is stopped before it and started after it. Under
`make chaos` the outage spans two boundaries, where the policies differ: `once` fires the
latest missed tick, `all` both, `skip` none.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import trio

from tests.chaos.harness import ChaosDatabase, Figure, fleet, poll, record_figure, scale

LEAD_S = 15.0  # from the test's start to the first boundary (the daemon starts meanwhile)
BEFORE_S = 4.0  # the database stops this long before the first boundary
BOUNDARIES_DOWN = scale(1, 2)
AFTER_S = 4.0  # ... and returns this long after the last one


def _offset_to_boundary(lead_s: float) -> tuple[float, float]:
    """The clock offset under which a minute boundary comes `lead_s` from now, and when
    (real wall time) it comes."""
    now = time.time()
    boundary = (math.floor((now + lead_s) / 60) + 1) * 60
    offset = boundary - (now + lead_s)
    return offset, now + lead_s


async def _until(wall: float) -> None:
    # The scenario's timeline (the outage must straddle the boundary), not a wait for a result.
    await trio.sleep(max(0.0, wall - time.time()))


async def _ticks(db: ChaosDatabase) -> dict[str, int]:
    rows = await db.query("SELECT function_id, count(*) AS n FROM chaos_ticks GROUP BY 1")
    return {r["function_id"]: int(r["n"]) for r in rows}


EXPECTED = scale(
    {"chaos-missed-once": 1, "chaos-missed-all": 1, "chaos-missed-skip": 1},
    {"chaos-missed-once": 1, "chaos-missed-all": 2},
)


async def test_a_tick_missed_while_postgres_is_down_fires_once_when_it_returns(
    tmp_path: Path, chaos_db: ChaosDatabase
) -> None:
    db, cluster = chaos_db, chaos_db.cluster
    offset, boundary = _offset_to_boundary(LEAD_S)
    async with fleet(tmp_path, db, CHAOS_POLICY_CRONS="1", DENEVA_CLOCK_OFFSET_S=f"{offset:.3f}") as group:
        daemon = await group.start("a")
        assert time.time() < boundary - BEFORE_S, f"the daemon took {daemon.started_s:.1f} s to start"
        await _until(boundary - BEFORE_S)
        assert await _ticks(db) == {}, "a tick fired before the boundary"
        await trio.to_thread.run_sync(functools.partial(cluster.stop, "fast"))
        await _until(boundary + 60 * (BOUNDARIES_DOWN - 1) + AFTER_S)
        cluster.start()  # on this thread: see ChaosPostgres.start
        back_at = trio.current_time()
        returned = await poll(lambda: db.value("SELECT now()"), 10, "the database is back")
        await poll(lambda: _has(db, EXPECTED), 20, f"the missed ticks fired: {EXPECTED}")
        recovery_s = trio.current_time() - back_at
        # They fired once the database was back (the outage did not lose them, nor fire them
        # twice), and nothing more is due for the missed boundaries.
        late = await db.value("SELECT bool_and(at >= $1) FROM chaos_ticks", returned)
        assert late is True
        runs = await db.query(
            "SELECT function_id, count(*) AS n FROM engine_runs "
            "WHERE function_id LIKE 'chaos-missed-%' GROUP BY 1"
        )
        assert {r["function_id"]: int(r["n"]) for r in runs} == EXPECTED
        assert await _ticks(db) == EXPECTED
        assert daemon.alive
        assert await daemon.stop() == 0
    record_figure(
        Figure(
            f"Postgres down across {BOUNDARIES_DOWN} cron tick(s)",
            recovery_s=recovery_s,
            runs_lost=0,
            notes="ticks fired per policy: "
            + ", ".join(f"{p}={EXPECTED.get(f'chaos-missed-{p}', 0)}" for p in ("once", "all", "skip")),
        )
    )


async def _has(db: ChaosDatabase, expected: dict[str, int]) -> bool:
    ticks = await _ticks(db)
    return all(ticks.get(k, 0) >= v for k, v in expected.items())
