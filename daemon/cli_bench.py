"""`deneva bench ...`: the benchmarks of SPEC §13, separate programs, never tests."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from deneva.cli_engine import UsageError, _config


def cmd_bench(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.which == "boot":
        from deneva.bench.boot import run_boot_bench

        return run_boot_bench(args.json)
    if args.which == "engine":
        from deneva.bench.engine import run_engine_bench

        if not 100 <= args.jobs <= 1_000_000:
            raise UsageError("--jobs: expected 100 to 1000000")
        return run_engine_bench(config, args.jobs, args.json, args.compare)
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
        "boot (start and stop times)",
    )
    bench.add_argument("which", choices=["engine", "bridge", "boot"], help="what to measure")
    bench.add_argument("--jobs", type=int, default=20_000, help="engine: jobs per phase (default 20000)")
    bench.add_argument("--calls", type=int, default=3_000, help="bridge: round trips (default 3000)")
    bench.add_argument(
        "--compare", action="store_true", help="engine: also measure Procrastinate and DBOS (extra: bench)"
    )
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(fn=cmd_bench)
