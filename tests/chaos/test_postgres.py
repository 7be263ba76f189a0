"""Postgres restarted (fast and immediate shutdown) and the daemon's backends killed
(`pg_terminate_backend`), under load (SPEC §14): the daemon stays up, /readyz is 503
while the database is away, work resumes within 5 s of its return, nothing acknowledged
is lost, and LISTEN and the API-key cache recover."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import trio

from deneva.errors import DatabaseError
from tests.chaos.harness import (
    ChaosDatabase,
    Figure,
    Fleet,
    Load,
    Replica,
    StopMode,
    fleet,
    poll,
    record_figure,
    scale,
)

RESTARTS: tuple[StopMode, ...] = scale(("fast", "immediate"), ("fast", "immediate", "fast", "immediate"))
TERMINATIONS = scale(2, 10)
DOWN_S = 2.0  # how long the database stays away (measured from /readyz's 503)
RESUME_BOUND_S = 5.0  # the bound, asserted as it is: work resumes within 5 s


async def _finished_since(db: ChaosDatabase, since: object) -> bool:
    count = await db.value(
        "SELECT count(*) FROM engine_runs WHERE status = 'succeeded' AND finished_at > $1", since
    )
    return int(count) > 0


async def _readyz_is(group: Fleet, replica: Replica, status: int) -> bool:
    return (await replica.readyz(group.http))[0] == status


async def _listening(db: ChaosDatabase) -> bool:
    rows = await db.query(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'deneva-listen' AND query LIKE 'LISTEN%'"
    )
    return bool(rows)


async def test_postgres_restarts_and_killed_backends_under_load(
    tmp_path: Path, chaos_db: ChaosDatabase
) -> None:
    db, cluster = chaos_db, chaos_db.cluster
    async with fleet(tmp_path, db, DENEVA_WORKERS="64") as group, trio.open_nursery() as nursery:
        daemon = await group.start("a")
        key = await group.new_api_key("acme")
        assert await group.authenticates(daemon, key)

        # Baseline throughput, then the same load through the faults.
        stop_load = trio.Event()
        load = Load(group, [daemon])
        nursery.start_soon(load.run, stop_load)
        began = trio.current_time()
        await trio.sleep(3.0)  # a window of load to measure, not a wait for anything
        baseline_done = int(await db.value("SELECT count(*) FROM engine_runs WHERE status = 'succeeded'"))
        baseline = baseline_done / (trio.current_time() - began)

        resumes: list[float] = []
        outages: list[float] = []
        faults_began = trio.current_time()
        done_before_faults = baseline_done
        for mode in RESTARTS:
            await trio.to_thread.run_sync(functools.partial(cluster.stop, mode))
            down_at = trio.current_time()
            await poll(
                functools.partial(_readyz_is, group, daemon, 503), 10, f"/readyz 503 after a {mode} stop"
            )
            _status, body = await daemon.readyz(group.http)
            assert body["checks"]["database"] == "unreachable", body
            assert (await group.http.get(f"{daemon.url}/healthz")).status_code == 200
            await trio.sleep(DOWN_S)  # the outage itself: the database stays away this long
            cluster.start()  # on this thread: see ChaosPostgres.start
            back_at = trio.current_time()
            outages.append(back_at - down_at)
            since = await poll(
                lambda: db.value("SELECT now()"), 10, "the owner's connection after the restart"
            )
            await poll(
                functools.partial(_finished_since, db, since),
                RESUME_BOUND_S + 10,
                f"a run finished after the {mode} restart",
                every_s=0.05,
            )
            resumes.append(trio.current_time() - back_at)
            await poll(
                functools.partial(_readyz_is, group, daemon, 200), 15, f"/readyz 200 after the {mode} restart"
            )
            assert daemon.alive

        for round_ in range(TERMINATIONS):
            killed = await cluster.terminate_backends(db.name)
            assert killed > 0, "the daemon had no backends to kill"
            since = await db.value("SELECT now()")
            await poll(
                functools.partial(_finished_since, db, since),
                15,
                f"a run finished after termination round {round_}",
            )
            assert daemon.alive
        faults_s = trio.current_time() - faults_began
        done_in_faults = int(await db.value("SELECT count(*) FROM engine_runs WHERE status = 'succeeded'"))
        stop_load.set()

        # Nothing acknowledged is lost: every acked event's run succeeds, no recorded step ran twice.
        acked = set(load.acked)

        async def all_acked_succeeded() -> bool:
            return await load.missing(db) == 0

        await poll(all_acked_succeeded, 60, f"all {len(acked)} acknowledged events' runs succeeded")
        audit = await db.effect_audit()
        assert audit.recorded_reruns == 0, audit
        counts = await db.run_counts("chaos-effect")
        assert set(counts) == {"succeeded"}, counts

        # LISTEN is back, and the key cache heard a revocation made after the restarts.
        await poll(functools.partial(_listening, db), 15, "the LISTEN connection is back")
        assert await group.authenticates(daemon, key)
        fresh = await group.new_api_key("globex")
        assert await group.authenticates(daemon, fresh)
        listed = await group.cli("key", "list", "--json")
        prefixes = [row["prefix"] for row in json.loads(listed) if row["tenant"] == "acme"]
        await group.cli("key", "revoke", prefixes[0])
        await poll(
            lambda: _refused(group, daemon, key), 5, "the revoked key refused within 5 s (heard over LISTEN)"
        )
        assert daemon.alive
        assert await daemon.stop() == 0
        nursery.cancel_scope.cancel()

    under_faults = (done_in_faults - done_before_faults) / faults_s
    record_figure(
        Figure(
            f"Postgres restarted ({', '.join(RESTARTS)}) + {TERMINATIONS} backend kills",
            recovery_s=max(resumes),
            runs_lost=0,
            duplicate_steps=audit.recorded_reruns,
            throughput_ratio=under_faults / baseline,
            notes=(
                f"resumed {', '.join(f'{r:.2f}' for r in resumes)} s after each return; outages "
                f"{', '.join(f'{o:.1f}' for o in outages)} s; {len(acked)} events acked, {load.refused} "
                "batches refused (503) while down"
            ),
        )
    )


async def _refused(group: Fleet, daemon: Replica, key: str) -> bool:
    try:
        return not await group.authenticates(daemon, key)
    except DatabaseError:
        return False
