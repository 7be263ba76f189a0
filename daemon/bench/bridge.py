"""`deneva bench bridge`: the cost of crossing from trio to asyncpg.

Measures `SELECT 1` through a 4-connection pool: native asyncio (no trio), the
thread bridge deneva uses (`deneva.db.AsyncioThread`), and trio-asyncio when it is
installed (`pip install trio-asyncio`), serially and with 8 concurrent callers.
Each variant runs in its own subprocess, so the event-loop policies never mix.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

WARMUP = 200


def _summary(
    latencies: list[float], serial_s: float, concurrent_s: float | None, calls: int
) -> dict[str, Any]:
    latencies.sort()
    return {
        "p50_us": round(latencies[len(latencies) // 2] * 1e6),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] * 1e6),
        "serial_per_s": round(calls / serial_s),
        "concurrent8_per_s": None if concurrent_s is None else round(calls / concurrent_s),
    }


async def _one(pool: Any) -> None:
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")


def _native(dsn: str, calls: int) -> dict[str, Any]:
    import asyncpg

    async def main() -> dict[str, Any]:
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)
        for _ in range(WARMUP):
            await _one(pool)
        latencies = []
        start = time.perf_counter()
        for _ in range(calls):
            t = time.perf_counter()
            await _one(pool)
            latencies.append(time.perf_counter() - t)
        serial = time.perf_counter() - start
        start = time.perf_counter()

        async def worker() -> None:
            for _ in range(calls // 8):
                await _one(pool)

        await asyncio.gather(*(worker() for _ in range(8)))
        concurrent = time.perf_counter() - start
        await pool.close()
        return _summary(latencies, serial, concurrent, calls)

    return asyncio.run(main())


def _trio_variant(dsn: str, calls: int, variant: str) -> dict[str, Any]:
    import asyncpg
    import trio

    async def main() -> dict[str, Any]:
        if variant == "thread":
            from deneva.db import AsyncioThread

            bridge = AsyncioThread()

            async def make() -> Any:
                return await asyncpg.create_pool(dsn, min_size=4, max_size=4)

            pool = await bridge.call(make)

            async def call() -> None:
                await bridge.call(_one, pool)

            async def close() -> None:
                await bridge.call(pool.close)
                bridge.stop()

            return await measure(call, close)
        import trio_asyncio

        async with trio_asyncio.open_loop():
            pool = await trio_asyncio.aio_as_trio(asyncpg.create_pool)(dsn, min_size=4, max_size=4)
            one = trio_asyncio.aio_as_trio(_one)

            async def call() -> None:
                await one(pool)

            async def close() -> None:
                await trio_asyncio.aio_as_trio(pool.close)()

            return await measure(call, close)

    async def measure(call: Any, close: Any) -> dict[str, Any]:
        for _ in range(WARMUP):
            await call()
        latencies = []
        start = time.perf_counter()
        for _ in range(calls):
            t = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t)
        serial = time.perf_counter() - start
        start = time.perf_counter()

        async def worker() -> None:
            for _ in range(calls // 8):
                await call()

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(worker)
        concurrent = time.perf_counter() - start
        await close()
        return _summary(latencies, serial, concurrent, calls)

    return trio.run(main)


def _child(variant: str, dsn: str, calls: int) -> None:
    result = _native(dsn, calls) if variant == "native" else _trio_variant(dsn, calls, variant)
    print(json.dumps(result))


def run_bridge_bench(dsn: str, calls: int, as_json: bool) -> int:
    results: dict[str, Any] = {}
    for variant in ("native", "thread", "trio-asyncio"):
        proc = subprocess.run(
            [sys.executable, "-m", "deneva.bench.bridge", variant, dsn, str(calls)],
            capture_output=True,
            text=True,
            timeout=600,
            env=os.environ.copy(),
        )
        if proc.returncode != 0:
            missing = "No module named 'trio_asyncio'" in proc.stderr
            results[variant] = {
                "error": "not installed (pip install trio-asyncio)" if missing else proc.stderr[-300:]
            }
        else:
            results[variant] = json.loads(proc.stdout)
    if as_json:
        print(json.dumps({"calls": calls, "cores": os.cpu_count(), "results": results}, indent=2))
        return 0
    print(f"SELECT 1 through a 4-connection pool, {calls} calls ({os.cpu_count()} cores)")
    print(f"{'bridge':<14} {'p50 µs':>8} {'p99 µs':>8} {'serial/s':>10} {'8 callers/s':>12}")
    for name, row in results.items():
        if "error" in row:
            print(f"{name:<14} {row['error']}")
        else:
            print(
                f"{name:<14} {row['p50_us']:>8} {row['p99_us']:>8} {row['serial_per_s']:>10} "
                f"{row['concurrent8_per_s'] or '-':>12}"
            )
    return 0


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]))
