"""Smoke tests of `deneva bench sync`: a tiny simulation runs end to end and its figures
make sense (never timed: SPEC §13 benchmarks are programs, not timed tests).

The simulation is the real one: the daemon's registry, dispatcher and scheduler, the
sandbox in a process of its own over HTTP, the session's Postgres; three tenants (one
per platform, 25 keys) for two simulated hours, with the engine polling every 30 s
rather than every second so that it takes a few seconds of wall time.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import asyncpg
import pytest
import trio

from deneva.bench import sync as sync_bench
from deneva.bench.simclock import ClockFile, SkipIdleClock
from deneva.cli import main as cli_main
from deneva.config import load_config
from tests.conftest import TEST_ENV, Cluster


def _bench_databases(cluster: Cluster) -> list[str]:
    async def names() -> list[str]:
        conn = await asyncpg.connect(cluster.dsn("postgres"))
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"deneva_bench_sync_{os.getpid()}%"
            )
            return [row["datname"] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(names())


def test_a_small_simulation_keeps_every_key_warm(cluster: Cluster) -> None:
    said: list[str] = []
    params = sync_bench.Params(3, 2, reads_per_tenant_hour=50, poll_s=30, lease_s=60)

    report = sync_bench.run_benchmark(
        cluster.dsn("postgres"), params, env=TEST_ENV, where="test", say=said.append
    )

    data = json.loads(json.dumps(report.as_json()))  # what --json prints
    assert any("3 tenants" in line for line in said)
    assert data["benchmark"] == "sync"
    assert data["tenants"] == 3 and data["simulated_hours"] == 2 and data["warmup_hours"] == 1
    assert data["connected_accounts"] == {"google": 1, "meta": 1, "tiktok": 1}
    assert data["keys"] == 12 + 7 + 6  # every (report type, date range) of each platform
    reads = data["reads"]
    assert reads["measured"] > 100 and reads["measured"] + reads["warmup_reads"] == 3 * 2 * 50
    assert reads["hits"] + reads["absent"] + reads["stale"] == reads["measured"]
    assert reads["hit_ratio"] >= 0.99 and reads["meets_target"] is True
    fetches = data["fetches"]
    assert fetches["keys_fetched"] == 25 and fetches["total"] > 25  # fetched, then refreshed
    assert fetches["after_warmup"] > 0 and fetches["per_key_per_ttl"] > 0
    assert 0.8 <= fetches["interval_over_ttl_mean"] <= fetches["interval_over_ttl_max"] < 1.0
    assert fetches["min_headroom_s"] > 0 and fetches["max_expired_rows"] == 0
    assert fetches["sync_failures"] == {} and fetches["failure_messages"] == {}
    calls = data["api_calls"]
    assert calls["report_total"] >= fetches["total"]  # one call or more per fetch
    assert calls["total"] == calls["report_total"] + calls["token_total"]
    assert calls["report_per_key_per_ttl"] > 0
    assert set(calls["by_endpoint"]) == {"google", "meta", "tiktok"}
    queue = data["queue"]
    assert queue["peak_queued"] >= 1 and len(queue["peak_queued_per_hour"]) == 2
    assert queue["drained_every_hour"] is True and queue["backlog_growing"] is False
    assert queue["final_queued"] == 0
    runs = data["runs"]
    assert runs["refresh-tenant-report"]["succeeded"] == fetches["total"]
    assert runs["eager-cache-refresh"]["succeeded"] >= 100  # every simulated minute
    assert runs["sync-google-account_health"]["succeeded"] >= 10  # every ten minutes
    assert data["wall_s"] > 0 and data["speedup"] > 1 and data["cpu"]["daemon_s"] > 0
    assert data["targets_met"] is True
    table = report.table()
    assert "hit ratio 100.000 %" in table or "hit ratio 99." in table
    assert "backlog growing: no" in table
    assert _bench_databases(cluster) == []  # the throwaway database is dropped


def test_bench_sync_reports_an_unreachable_server_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(None, {"DENEVA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})

    assert sync_bench.run_sync_bench(config, 3, 2, 1, False) == 1

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("deneva: error: bench sync:")


def test_the_command_checks_its_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "sync", "--hours", "1"]) == 1
    assert "--hours: expected 1.1 to 168" in capsys.readouterr().err
    assert cli_main(["bench", "sync", "--platforms", "4"]) == 1
    assert "--platforms: expected 1 to 3" in capsys.readouterr().err


def test_tenants_take_the_platforms_in_turn() -> None:
    one = sync_bench.connections(4, 1)
    assert [(c.tenant, c.platform) for c in one] == [(0, "google"), (1, "meta"), (2, "tiktok"), (3, "google")]
    two = sync_bench.connections(2, 2)
    assert [(c.tenant, c.platform) for c in two] == [(0, "google"), (0, "meta"), (1, "meta"), (1, "tiktok")]
    accounts = {c.account_id for c in sync_bench.connections(300, 3)}
    assert len(accounts) == 900  # an account of its own per tenant and platform


def test_queue_peaks_count_runs_due_and_not_started() -> None:
    start = sync_bench.START
    runs = [
        {"run_at": start + 10, "started_at": start + 12},  # waited 2 s
        {"run_at": start + 11, "started_at": start + 13},
        {"run_at": start + 11.5, "started_at": start + 11.6},
        {"run_at": start + 3700, "started_at": None},  # never started: still queued in hour 1
        {"run_at": start + 100, "started_at": start + 50},  # retried: due again after its start
    ]

    peaks, retried = sync_bench.queue_peaks(runs, start, start + 7200)

    assert peaks == [3, 1] and retried == 1


def test_the_clock_jumps_over_idle_time_and_holds_while_busy() -> None:
    clock = SkipIdleClock()

    async def main() -> tuple[float, float, float]:
        began = time.monotonic()
        await trio.sleep(24 * 3600)  # idle: one jump
        idle_real = time.monotonic() - began
        began = time.monotonic()
        with clock.busy():  # waiting on something outside trio: real time
            await trio.sleep(0.05)
        busy_real = time.monotonic() - began
        return idle_real, busy_real, trio.current_time()

    idle_real, busy_real, virtual = trio.run(main, clock=clock)

    assert idle_real < 5 and busy_real >= 0.05
    assert virtual >= 24 * 3600 + 0.05 and clock.jumps >= 1


def test_another_process_reads_the_same_virtual_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    writer = ClockFile(path, create=True)
    clock = SkipIdleClock(writer)
    reader = ClockFile(path)
    try:
        clock.anchor(1_800_000_000.0 - clock.current_time())
        assert abs(reader.now() - 1_800_000_000.0) < 1
        clock.anchor(1_800_000_000.0 - clock.current_time() + 3600)
        assert abs(reader.now() - 1_800_003_600.0) < 1
    finally:
        reader.close()
        writer.close()
