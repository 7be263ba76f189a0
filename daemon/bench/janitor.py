"""`deneva bench janitor`: the engine's throughput while the janitor prunes (SPEC §13:
the engine keeps >= 80 % of its no-op throughput while 1,000,000 finished runs are
pruned beside it).

On a throwaway database (as `deneva bench engine` makes them):

1. `--runs` finished runs (succeeded 8 days ago, past the 7-day retention) are stored,
   each with one step and one event: what a busy month leaves behind (then VACUUM
   ANALYZE and a CHECKPOINT, so the seeding's writes do not burden the first phase).
2. The real circuit (listener, dispatcher, lifeline) runs no-op jobs; a producer keeps
   the queue topped up, so the dispatcher always has work. After a 30 s warm-up, three
   phases, each measured
   by the dispatcher's finished counter over its wall time:
   - `before`: no-op jobs alone, `--seconds` long;
   - `pruning`: the same load while a `janitor-prune-engine` run (the janitor's own
     pass, claimed by the same dispatcher, with the daemon's default retention, batch
     and rest) deletes the old runs, their steps and events; the phase runs from the
     moment the pass is running until it has finished;
   - `after`: no-op jobs alone again (the baseline is the mean of before and after, so a
     drifting machine or a growing table does not favour either side).
3. Meanwhile a sampler reads `pg_locks` every 20 ms for the longest wait for a lock
   anyone had, and the pass reports how long each of its delete statements took (how
   long it held its row locks).

Reported: runs/s in each phase, the ratio pruning/baseline (target >= 0.8; also against
the slower of the two baselines), how long the pass took and what it deleted, the
longest lock wait and the longest janitor statement, with its table.
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
from deneva.interpreter import tune_collector
from deneva.retention import PRUNE_ENGINE, JanitorPlan, JanitorServices, register_retention
from deneva.wiring import engine_circuit

TARGET_RATIO = 0.8
SEED_CHUNK = 50_000
QUEUE_LOW = 30_000  # the producer tops the queue up when fewer runs than this are due
QUEUE_BATCH = 10_000
WORKERS = 256
SAMPLE_S = 0.02
WARMUP_S = 30.0
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

_LOCK_WAIT = "SELECT coalesce(max(extract(epoch FROM now() - waitstart)), 0) FROM pg_locks WHERE NOT granted"


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
    longest_statement_table: str
    statements: int
    batch: int
    rest_ratio: float

    @property
    def baseline(self) -> float:
        return (self.before.per_s + self.after.per_s) / 2

    @property
    def ratio(self) -> float:
        return self.pruning.per_s / self.baseline if self.baseline else 0.0

    @property
    def worst_ratio(self) -> float:
        """Against the faster of the two phases without pruning."""
        best = max(self.before.per_s, self.after.per_s)
        return self.pruning.per_s / best if best else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "janitor",
            "seededRuns": self.seeded,
            "server": self.server.as_json(),
            "phases": {p.name: p.as_json() for p in (self.before, self.pruning, self.after)},
            "baselineRunsPerS": round(self.baseline),
            "ratio": round(self.ratio, 3),
            "ratioToFasterBaseline": round(self.worst_ratio, 3),
            "target": TARGET_RATIO,
            "targetMet": self.ratio >= TARGET_RATIO,
            "deleted": self.deleted,
            "longestLockWaitS": round(self.longest_lock_wait_s, 3),
            "longestJanitorStatementS": round(self.longest_janitor_statement_s, 3),
            "longestStatementTable": self.longest_statement_table,
            "statements": self.statements,
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
            f"  throughput while pruning / without: {self.ratio:.3f} (target >= {TARGET_RATIO}: {verdict}); "
            f"against the faster phase without: {self.worst_ratio:.3f}",
            f"  the pass deleted: {self.deleted}",
            f"  longest lock wait seen: {self.longest_lock_wait_s * 1000:.0f} ms; longest of the pass's "
            f"{self.statements} statements: {self.longest_janitor_statement_s * 1000:.0f} ms "
            f"({self.longest_statement_table})",
        ]
        return "\n".join(lines)


async def _seed(bench: Bench, runs: int, say: Say) -> None:
    at = time.time() - 8 * DAY
    started = time.perf_counter()
    for first in range(1, runs + 1, SEED_CHUNK):
        last = min(runs, first + SEED_CHUNK - 1)
        await bench.bridge.call(bench.owner.execute, _SEED, as_datetime(at), first, last)
    await bench.bridge.call(bench.owner.execute, "VACUUM ANALYZE engine_runs, engine_steps, engine_events")
    # The seeding's dirty pages are written now, not by checkpoints during the first phase.
    await bench.bridge.call(bench.owner.execute, "CHECKPOINT")
    say(f"seeded {runs:,} finished runs with their steps and events in {time.perf_counter() - started:.0f} s")


class Sampler:
    def __init__(self) -> None:
        self.lock_wait_s = 0.0
        self.statement_s = 0.0
        self.statement_table = ""
        self.statements = 0

    def statement(self, table: str, seconds: float) -> None:
        self.statements += 1
        if seconds > self.statement_s:
            self.statement_s, self.statement_table = seconds, table

    async def run(self, bench: Bench) -> None:
        while True:
            self.lock_wait_s = max(self.lock_wait_s, float(await bench.db.fetchval(_LOCK_WAIT)))
            await trio.sleep(SAMPLE_S)


async def _produce(send: Callable[[list[Event]], Any], claimed: Callable[[], int]) -> None:
    """Keep at least QUEUE_LOW no-op runs queued (counted here, as sent minus claimed: a
    count in the database would scan the table, seeded rows and all, and load it)."""
    sent = 0
    while True:
        if sent - claimed() < QUEUE_LOW:
            now = time.time()
            await send([Event(NOOP_EVENT, {}, new_event_id(), now) for _ in range(QUEUE_BATCH)])
            sent += QUEUE_BATCH
        else:
            await trio.sleep(0.01)


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
    sampler = Sampler()
    services.value = JanitorServices(bench.db, engine, clock, plan, observe_statement=sampler.statement)

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
        nursery.start_soon(_produce, engine.send_events, lambda: dispatcher.started)
        nursery.start_soon(sampler.run, bench)
        await trio.sleep(WARMUP_S)
        before = await phase("before", pause)
        run_id = await engine.invoke(PRUNE_ENGINE)
        with trio.fail_after(600):  # claimed behind the queued no-op runs
            while (await engine.get_run(run_id)).status == "queued":
                await trio.sleep(0.01)
        say(f"pruning: {PRUNE_ENGINE} run {run_id} is running beside the load")

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
    tune_collector()  # as the daemon does

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
            sampler.statement_table,
            sampler.statements,
            plan.retention.batch,
            plan.retention.rest_ratio,
        )

    return print_report("janitor", produce, as_json)
