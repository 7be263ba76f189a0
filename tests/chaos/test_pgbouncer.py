"""Two replicas through PgBouncer in transaction-pooling mode, as large deployments run:
the pool goes through the pooler (`database_pooling = "transaction"`), LISTEN and the
lease upkeep straight to Postgres (`direct_database_url`), and the cases above still
hold: under load, with a backend kill round, a Postgres restart and a replica killed,
nothing acknowledged is lost, no recorded step runs again, every cron tick fires once,
and a revoked key is refused within 5 s. A login without the role default transaction
pooling needs is refused at start, naming the key (docs/deploy-systemd.md)."""

from __future__ import annotations

import functools
import json
import math
import shutil
import time
from pathlib import Path

import trio

from tests.chaos.harness import (
    ChaosDatabase,
    Figure,
    Fleet,
    Load,
    PgBouncer,
    Replica,
    fleet,
    poll,
    record_figure,
    scale,
)

MINUTE_CRONS = scale(20, 100)
LEAD_S = 20.0  # from the start to the minute boundary both replicas fire


def _offset_to_boundary(lead_s: float) -> float:
    now = time.time()
    boundary = (math.floor((now + lead_s) / 60) + 1) * 60
    return boundary - (now + lead_s)


async def test_two_replicas_through_pgbouncer_transaction_pooling(
    tmp_path: Path, chaos_db: ChaosDatabase
) -> None:
    assert shutil.which(PgBouncer.BINARY), (
        f"{PgBouncer.BINARY} is missing: `make test` and `make chaos` install it "
        "(apt-get install -y pgbouncer)"
    )
    db, cluster = chaos_db, chaos_db.cluster
    bouncer = PgBouncer(cluster, tmp_path / "pgbouncer")
    bouncer.start()
    try:
        env = {
            "DENEVA_DATABASE_URL": bouncer.url(db.name),
            "DENEVA_DATABASE_POOLING": "transaction",
            "DENEVA_DIRECT_DATABASE_URL": db.app_url,
            "DENEVA_WORKERS": "32",
            "CHAOS_MINUTE_CRONS": str(MINUTE_CRONS),
            "DENEVA_CLOCK_OFFSET_S": f"{_offset_to_boundary(LEAD_S):.3f}",
        }
        async with fleet(tmp_path, db, **env) as group, trio.open_nursery() as nursery:
            # Without the role default, the pooled server connections would run as a login
            # that can read nothing: the start is refused, naming the key and the fix.
            refused = await group.cli_error("run")
            assert "DENEVA_DATABASE_POOLING" in refused and "SET role = 'deneva_system'" in refused, refused
            await db.execute("ALTER ROLE deneva_daemon SET role = 'deneva_system'")
            # A role default applies to sessions opened after it: the server connections
            # the refused start made keep none until the pooler reconnects (docs/deploy-systemd.md).
            bouncer.stop()
            bouncer.start()

            replicas: list[Replica] = []

            async def start(name: str) -> None:
                replicas.append(await group.start(name))

            async with trio.open_nursery() as starting:
                starting.start_soon(start, "a")
                starting.start_soon(start, "b")
            a, b = sorted(replicas, key=lambda r: r.name)
            key = await group.new_api_key("acme")
            assert await group.authenticates(b, key)

            stop_load = trio.Event()
            targets = [b, a]
            load = Load(group, targets, hold_s=0.2, prefix="pooled")
            nursery.start_soon(load.run, stop_load)
            await poll(lambda: _succeeded(db, 100), 30, "the load runs through the pooler")

            assert await cluster.terminate_backends(db.name) > 0
            await poll(lambda: _succeeded(db, 200), 30, "the load goes on after the backends were killed")
            await trio.to_thread.run_sync(functools.partial(cluster.stop, "fast"))
            cluster.start()  # on this thread: see ChaosPostgres.start
            back_at = trio.current_time()
            done = int(
                await poll(
                    lambda: db.value(
                        "SELECT count(*) + 1 FROM engine_runs WHERE function_id = 'chaos-effect' "
                        "AND status = 'succeeded'"
                    ),
                    10,
                    "the database is back",
                )
            )
            await poll(lambda: _succeeded(db, done), 15, "work resumes after the restart", every_s=0.05)
            resume_s = trio.current_time() - back_at
            assert resume_s <= 5.0, f"work resumed {resume_s:.1f} s after the restart (bound 5 s)"
            await a.kill()
            killed_at = trio.current_time()

            ticks = MINUTE_CRONS
            await poll(lambda: _ticks(db, ticks), LEAD_S + 60, f"{ticks} cron ticks ran", every_s=0.5)
            stop_load.set()
            await poll(lambda: _all_acked(db, load), 45, f"all {len(load.acked)} acknowledged runs succeeded")
            takeover_s = trio.current_time() - killed_at

            doubled = await db.value(
                "SELECT count(*) FROM (SELECT function_id, tick_at FROM chaos_ticks GROUP BY 1, 2 "
                "HAVING count(*) > 1) AS d"
            )
            assert doubled == 0 and int(await db.value("SELECT count(*) FROM chaos_ticks")) == ticks
            audit = await db.effect_audit()
            assert audit.recorded_reruns == 0, audit

            # The key cache hears a revocation over the direct LISTEN connection.
            assert await group.authenticates(b, key)
            prefixes = [r["prefix"] for r in json.loads(await group.cli("key", "list", "--json"))]
            await group.cli("key", "revoke", prefixes[0])
            await poll(lambda: _refused(group, b, key), 5, "the revoked key refused within 5 s")
            assert b.alive
            assert await b.stop() == 0
            nursery.cancel_scope.cancel()
    finally:
        bouncer.stop()
    record_figure(
        Figure(
            "two replicas through PgBouncer (transaction pooling)",
            recovery_s=resume_s,
            runs_lost=0,
            duplicate_steps=audit.recorded_reruns,
            notes=(
                f"{len(load.acked)} runs acked; backend kills, a fast restart, a replica killed; "
                f"{ticks} ticks once each; all done {takeover_s:.1f} s after the kill"
            ),
        )
    )


async def _succeeded(db: ChaosDatabase, at_least: int) -> bool:
    count = await db.value(
        "SELECT count(*) FROM engine_runs WHERE function_id = 'chaos-effect' AND status = 'succeeded'"
    )
    return int(count) >= at_least


async def _ticks(db: ChaosDatabase, expected: int) -> bool:
    return int(await db.value("SELECT count(*) FROM chaos_ticks")) >= expected


async def _all_acked(db: ChaosDatabase, load: Load) -> bool:
    return await load.missing(db) == 0


async def _refused(group: Fleet, replica: Replica, key: str) -> bool:
    return not await group.authenticates(replica, key)
