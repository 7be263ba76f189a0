"""A worker process for the kill -9 test: runs a 3-step function, logging each step.

python crash_worker.py DSN LOG_FILE first   # sends the event, hangs inside step two
python crash_worker.py DSN LOG_FILE second  # picks the run up after the lease expires
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from deneva.clock import SystemClock
from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.engine import EngineSettings
from deneva.engine.functions import EventTrigger, Registry
from deneva.wiring import engine_circuit


def main() -> None:
    dsn, log_file, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    registry = Registry()

    def note(step: str) -> None:
        with log_file.open("a") as handle:
            handle.write(f"{step} {mode} {os.getpid()}\n")

    @registry.function("three-steps", EventTrigger("crash/test"))
    async def three_steps(ctx: Context) -> str:
        await ctx.step.run("one", note, "one")

        async def two() -> None:
            note("two")
            if mode == "first":
                await trio.sleep_forever()  # killed here

        await ctx.step.run("two", two)
        await ctx.step.run("three", note, "three")
        return "done"

    async def run() -> None:
        db = await Database.open(dsn, min_size=1, max_size=4)
        settings = EngineSettings(lease_s=2, poll_s=0.2, rescue_every_s=0.5)
        circuit = engine_circuit(
            db, registry, SystemClock(), f"crash-{mode}", settings, drain=trio.Event(), schedule=False
        )
        engine = circuit.engine
        async with trio.open_nursery() as nursery:
            for actor in circuit.actors:
                await nursery.start(actor.run)
            if mode == "first":
                await engine.send({"name": "crash/test", "id": "crash-1"})
                await trio.sleep_forever()
            run_id = await db.fetchval("SELECT id FROM engine_runs")
            record = await engine.wait_for_run(run_id, 60)
            print(record.status, flush=True)
            nursery.cancel_scope.cancel()
        await db.close()

    trio.run(run)


if __name__ == "__main__":
    main()
