"""`deneva bench ...`: the benchmarks of SPEC §13, separate programs, never tests."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from deneva.cli_engine import UsageError, command_config

DEFAULT_RATES = {"mcp": 500.0, "webhooks": 200.0}


def cmd_bench(args: argparse.Namespace) -> int:
    config = command_config(args)
    if args.rate is None:
        args.rate = DEFAULT_RATES.get(args.which, 500.0)
    if args.which == "boot":
        from deneva.bench.boot import run_boot_bench

        return run_boot_bench(args.json)
    if args.which == "engine":
        from deneva.bench.engine import run_engine_bench

        if not 100 <= args.jobs <= 1_000_000:
            raise UsageError("--jobs: expected 100 to 1000000")
        return run_engine_bench(config, args.jobs, args.json, args.compare)
    if args.which == "mcp":
        from deneva.bench.mcp import run_mcp_bench

        if not 1 <= args.sessions <= 500:
            raise UsageError("--sessions: expected 1 to 500")
        if not 1 <= args.rate <= 100_000:
            raise UsageError("--rate: expected 1 to 100000 calls/s")
        if not 1 <= args.duration <= 3600:
            raise UsageError("--duration: expected 1 to 3600 s")
        if not 1 <= args.rounds <= 20:
            raise UsageError("--rounds: expected 1 to 20")
        return run_mcp_bench(
            config, args.sessions, args.rate, args.duration, args.json, args.rounds, oauth=args.oauth
        )
    if args.which == "sync":
        from deneva.bench.sync import run_sync_bench

        if not 1 <= args.tenants <= 100_000:
            raise UsageError("--tenants: expected 1 to 100000")
        if not 1.1 <= args.hours <= 168:
            raise UsageError("--hours: expected 1.1 to 168 (the first hour is warm-up)")
        if not 1 <= args.platforms <= 3:
            raise UsageError("--platforms: expected 1 to 3")
        return run_sync_bench(config, args.tenants, args.hours, args.platforms, args.json)
    if args.which == "webhooks":
        from deneva.bench.webhooks import run_webhooks_bench

        if not 1 <= args.rate <= 10_000:
            raise UsageError("--rate: expected 1 to 10000 deliveries/s for webhooks")
        if not 1 <= args.duration <= 3600:
            raise UsageError("--duration: expected 1 to 3600 s")
        if not 0 <= args.duplicates <= 0.9:
            raise UsageError("--duplicates: expected a share from 0 to 0.9")
        return run_webhooks_bench(config, args.rate, args.duration, args.duplicates, args.json)
    if args.which == "janitor":
        from deneva.bench.janitor import run_janitor_bench

        if not 1_000 <= args.runs <= 10_000_000:
            raise UsageError("--runs: expected 1000 to 10000000")
        if not 1 <= args.seconds <= 3600:
            raise UsageError("--seconds: expected 1 to 3600")
        return run_janitor_bench(config, args.runs, args.seconds, args.json)
    from deneva.admin import admin_dsn
    from deneva.bench.bridge import run_bridge_bench

    if not 100 <= args.calls <= 1_000_000:
        raise UsageError("--calls: expected 100 to 1000000")
    with admin_dsn(config) as dsn:
        return run_bridge_bench(dsn.replace("/deneva?", "/postgres?"), args.calls, args.json)


def add_bench_command(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    bench = add(
        "bench",
        "benchmarks: engine (jobs/s, latency; --compare with peers), bridge (trio to asyncpg), "
        "boot (start and stop times), mcp (tools/call latency and peak beside the MCP Python SDK), "
        "sync (a simulated day of keeping the cache warm), janitor (engine throughput while pruning), "
        "webhooks (signed deliveries' latency at a fixed rate, duplicates included)",
    )
    bench.add_argument(
        "which",
        choices=["engine", "bridge", "boot", "mcp", "sync", "janitor", "webhooks"],
        help="what to measure",
    )
    bench.add_argument("--jobs", type=int, default=20_000, help="engine: jobs per phase (default 20000)")
    bench.add_argument("--calls", type=int, default=3_000, help="bridge: round trips (default 3000)")
    bench.add_argument(
        "--compare",
        action="store_true",
        help="engine: also measure Procrastinate, DBOS and pg-boss (extra: bench; npm for pg-boss)",
    )
    bench.add_argument("--sessions", type=int, default=50, help="mcp: MCP sessions (default 50)")
    bench.add_argument(
        "--oauth",
        action="store_true",
        help="mcp: measure deneva a second time with an OAuth access token instead of the API key",
    )
    bench.add_argument(
        "--rate",
        type=float,
        default=None,
        help="mcp: calls/s offered (default 500); webhooks: deliveries/s offered (default 200)",
    )
    bench.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="mcp: seconds per phase; webhooks: seconds of sending (default 10)",
    )
    bench.add_argument(
        "--duplicates",
        type=float,
        default=0.2,
        help="webhooks: share of deliveries repeating an earlier webhook-id (default 0.2)",
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="mcp: rounds, the servers taking turns; the median round is reported (default 3)",
    )
    bench.add_argument("--tenants", type=int, default=1000, help="sync: tenants (default 1000)")
    bench.add_argument("--hours", type=float, default=24.0, help="sync: simulated hours (default 24)")
    bench.add_argument(
        "--platforms", type=int, default=1, help="sync: platforms per tenant, 1 to 3 (default 1)"
    )
    bench.add_argument(
        "--runs", type=int, default=1_000_000, help="janitor: finished runs to prune (default 1000000)"
    )
    bench.add_argument(
        "--seconds",
        type=float,
        default=20.0,
        help="janitor: seconds of each phase without pruning (default 20)",
    )
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(fn=cmd_bench)
