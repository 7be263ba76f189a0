"""`deneva bench janitor`: the engine's throughput while the janitor prunes (SPEC §13:
the engine keeps >= 80 % of its no-op throughput while 1,000,000 finished runs are
pruned beside it).

On a throwaway database (as `deneva bench engine` makes them):

1. `--runs` finished runs (succeeded 8 days ago, past the 7-day retention) are stored,
   each with one step and one event: what a busy month leaves behind.
2. The real circuit (listener, dispatcher, lifeline) runs no-op jobs; a producer keeps
   the queue topped up, so the dispatcher always has work. Three phases, each measured
   by the dispatcher's finished counter over its wall time:
   - `before`: no-op jobs alone, `--seconds` long;
   - `pruning`: the same load while a `janitor-prune-engine` run (the janitor's own
     pass, claimed by the same dispatcher, with the daemon's default retention, batch
     and rest) deletes the old runs, their steps and events; the phase lasts until the
     pass has finished;
   - `after`: no-op jobs alone again (the baseline is the mean of before and after, so a
     drifting machine or a growing table does not favour either side).
3. Meanwhile a sampler reads `pg_locks` and `pg_stat_activity` every 20 ms: the longest
   wait for a lock anyone had, and the longest janitor statement (how long its row locks
   were held).

Reported: runs/s in each phase, the ratio pruning/baseline (target >= 0.8), how long the
pass took and what it deleted, the longest lock wait and the longest janitor statement.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from deneva.admin import admin_dsn, run_async
from deneva.bench.common import BenchError, Say, database_where, print_report, say_to_stderr
from deneva.bench.engine import Bench, ServerInfo, ThrowawayDatabase, server_info, with_bench
from deneva.clock import SystemClock, as_datetime
from deneva.config import Config
from deneva.engine.builtin import NOOP_EVENT
from deneva.engine.engine import EngineSettings
from deneva.engine.events import Event, new_event_id
from deneva.functions import Bound
from deneva.retention import PRUNE_ENGINE, JanitorPlan, JanitorServices, register_retention
from deneva.wiring import engine_circuit

TARGET_RATIO = 0.8
SEED_CHUNK = 50_000
QUEUE_LOW = 30_000  # the producer tops the queue up when fewer runs than this are due
QUEUE_BATCH = 10_000
WORKERS = 256
SAMPLE_S = 0.02
DAY = 86_400.0

_SEED = """
WITH runs AS (
    INSERT INTO engine_runs (id, function_id, status, event, attempt, max_attempts, run_at, created_at,
                             started_at, finished_at)
    SELECT gen_random_uuid(), 'deneva-noop', 'succeeded',
           jsonb_build_object('name', 'deneva/noop', 'id', 'seed-' || i), 1, 4, $1, $1, $1, $1
    FROM generate_series($2::bigint, $3::bigint) AS i
    RETURNING id, finished_at
), steps AS (
    INSERT INTO engine_steps (run_id, step_id, output, completed_at)
    SELECT id, 'echo', '{"value": null}', finished_at FROM runs
)
INSERT INTO engine_events (id, name, data, ts, received_at)
SELECT 'seed-' || i, 'deneva/noop', '{}', $1, $1 FROM generate_series($2::bigint, $3::bigint) AS i
"""

# The janitor's statements, told by their text (sql/queries/engine_prune_*.sql).
_SAMPLE = """
SELECT
    (SELECT coalesce(max(extract(epoch FROM now() - waitstart)), 0) FROM pg_locks WHERE NOT granted)
        AS lock_wait_s,
    (SELECT coalesce(max(extract(epoch FROM now() - query_start)), 0) FROM pg_stat_activity
     WHERE state = 'active' AND pid <> pg_backend_pid()
       AND (query LIKE '%WITH doomed AS%' OR query LIKE '%DELETE FROM engine_%')) AS janitor_statement_s
"""

_DUE = "SELECT count(*) FROM engine_runs WHERE status = 'queued'"


@attrs.frozen
class Phase:
    name: str
    runs: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.runs / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "seconds": round(self.seconds, 2), "runsPerS": round(self.per_s)}


@attrs.frozen
class Report:
    seeded: int
    server: ServerInfo
    before: Phase
    pruning: Phase
    after: Phase
    deleted: dict[str, Any]
    longest_lock_wait_s: float
    longest_janitor_statement_s: float
    batch: int
    rest_ratio: float

    @property
    def baseline(self) -> float:
        return (self.before.per_s + self.after.per_s) / 2

    @property
    def ratio(self) -> float:
        return self.pruning.per_s / self.baseline if self.baseline else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "janitor",
            "seededRuns": self.seeded,
            "server": self.server.as_json(),
            "phases": {p.name: p.as_json() for p in (self.before, self.pruning, self.after)},
            "baselineRunsPerS": round(self.baseline),
            "ratio": round(self.ratio, 3),
            "target": TARGET_RATIO,
            "targetMet": self.ratio >= TARGET_RATIO,
            "deleted": self.deleted,
            "longestLockWaitS": round(self.longest_lock_wait_s, 3),
            "longestJanitorStatementS": round(self.longest_janitor_statement_s, 3),
            "batch": self.batch,
            "restRatio": self.rest_ratio,
        }

    def table(self) -> str:
        verdict = "met" if self.ratio >= TARGET_RATIO else "MISSED"
        lines = [
            f"deneva bench janitor: {self.seeded:,} finished runs (with a step and an event each) pruned",
            f"  PostgreSQL {self.server.version}, fsync {self.server.fsync}; batch {self.batch}, "
            f"rest {self.rest_ratio:g}x each statement",
            *(
                f"  no-op runs/s {p.name + ':':<8} {p.per_s:>9,.0f}  ({p.runs:,} in {p.seconds:.1f} s)"
                for p in (self.before, self.pruning, self.after)
            ),
            f"  throughput while pruning / without: {self.ratio:.3f} (target >= {TARGET_RATIO}: {verdict})",
            f"  the pass deleted: {self.deleted}",
            f"  longest lock wait seen: {self.longest_lock_wait_s * 1000:.0f} ms; "
            f"longest janitor statement: {self.longest_janitor_statement_s * 1000:.0f} ms",
        ]
        return "\n".join(lines)


async def _seed(bench: Bench, runs: int, say: Say) -> None:
    at = time.time() - 8 * DAY
    started = time.perf_counter()
    for first in range(1, runs + 1, SEED_CHUNK):
        last = min(runs, first + SEED_CHUNK - 1)
        await bench.bridge.call(bench.owner.execute, _SEED, as_datetime(at), first, last)
    await bench.bridge.call(bench.owner.execute, "VACUUM ANALYZE engine_runs, engine_steps, engine_events")
    say(f"seeded {runs:,} finished runs with their steps and events in {time.perf_counter() - started:.0f} s")


class Sampler:
    def __init__(self) -> None:
        self.lock_wait_s = 0.0
        self.statement_s = 0.0

    async def run(self, bench: Bench) -> None:
        while True:
            row = await bench.db.fetchrow(_SAMPLE)
            if row is not None:
                self.lock_wait_s = max(self.lock_wait_s, float(row["lock_wait_s"]))
                self.statement_s = max(self.statement_s, float(row["janitor_statement_s"]))
            await trio.sleep(SAMPLE_S)


async def _produce(bench: Bench, send: Callable[[list[Event]], Any]) -> None:
    """Keep at least QUEUE_LOW no-op runs queued."""
    while True:
        queued = await bench.db.fetchval(_DUE)
        if queued < QUEUE_LOW:
            now = time.time()
            await send([Event(NOOP_EVENT, {}, new_event_id(), now) for _ in range(QUEUE_BATCH)])
        else:
            await trio.sleep(0.05)


async def _measure(
    bench: Bench, runs: int, seconds: float, say: Say
) -> tuple[Phase, Phase, Phase, dict[str, Any], Sampler, JanitorPlan]:
    await _seed(bench, runs, say)
    registry = bench.registry
    services: Bound[JanitorServices] = Bound("janitor")
    register_retention(registry, services.get)
    plan = JanitorPlan()
    clock = SystemClock()
    circuit = engine_circuit(
        bench.db,
        registry,
        clock,
        f"{bench.tag}-janitor",
        EngineSettings(workers=WORKERS, claim_batch=500),
        drain=trio.Event(),
        schedule=False,
    )
    engine, dispatcher = circuit.engine, circuit.actor("dispatcher")
    services.value = JanitorServices(bench.db, engine, clock, plan)
    sampler = Sampler()

    async def pause() -> None:
        await trio.sleep(seconds)

    async def phase(name: str, until: Callable[[], Any]) -> Phase:
        start_runs, started = dispatcher.finished, time.perf_counter()
        await until()
        phase = Phase(name, dispatcher.finished - start_runs, time.perf_counter() - started)
        say(f"{name}: {phase.per_s:,.0f} no-op runs/s ({phase.runs:,} in {phase.seconds:.1f} s)")
        return phase

    async with trio.open_nursery() as nursery:
        for actor in circuit.actors:
            await nursery.start(actor.run)
        nursery.start_soon(_produce, bench, engine.send_events)
        nursery.start_soon(sampler.run, bench)
        await trio.sleep(3)  # warm-up
        before = await phase("before", pause)
        run_id = await engine.invoke(PRUNE_ENGINE)
        say(f"pruning: {PRUNE_ENGINE} run {run_id} started beside the load")

        async def pass_done() -> None:
            record = await engine.wait_for_run(run_id, 3600)
            if record.status != "succeeded":
                raise BenchError(f"{PRUNE_ENGINE} ended {record.status}: {record.last_error}")

        pruning = await phase("pruning", pass_done)
        pruned = await engine.get_run(run_id)
        after = await phase("after", pause)
        nursery.cancel_scope.cancel()
    deleted: dict[str, Any] = pruned.output
    if deleted["runs"]["succeeded"] != runs:
        raise BenchError(f"the pass deleted {deleted['runs']['succeeded']} of the {runs} old runs")
    return before, pruning, after, deleted, sampler, plan


def run_janitor_bench(
    config: Config, runs: int, seconds: float, as_json: bool, say: Say = say_to_stderr
) -> int:
    """`deneva bench janitor [--runs N] [--seconds S] [--json]`: print the figures; the exit code."""
    where = database_where(config)

    def produce() -> Report:
        with admin_dsn(config) as server_dsn:
            server = run_async(lambda: server_info(server_dsn, where))
            name = f"deneva_bench_janitor_{os.getpid()}"
            say(
                f"PostgreSQL {server.version} (fsync {server.fsync}); {os.cpu_count()} cores; database {name}"
            )
            with ThrowawayDatabase(server_dsn, name, server) as dsn:

                async def measure(bench: Bench) -> Any:
                    return await _measure(bench, runs, seconds, say)

                before, pruning, after, deleted, sampler, plan = trio.run(
                    with_bench, dsn, config.env, say, measure
                )
        return Report(
            runs,
            server,
            before,
            pruning,
            after,
            deleted,
            sampler.lock_wait_s,
            sampler.statement_s,
            plan.retention.batch,
            plan.retention.rest_ratio,
        )

    return print_report("janitor", produce, as_json)
