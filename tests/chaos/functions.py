"""The chaos suite's durable functions, loaded into real `deneva run` processes through
the `functions_module` key (DENEVA_FUNCTIONS_MODULE=tests.chaos.functions).

Every execution of a step body leaves a row in a table (`chaos_effects`, `chaos_ticks`:
see `SCHEMA`), written from inside the step before the engine records the step. So the
tables count what really ran, crashes included, and a test can check, from the database
alone, that nothing was lost and that no step whose result was recorded ran again: each
effect row notes whether the step's record already existed when its body ran
(`recorded_before`), which must never be true.

- `chaos-effect` (event `chaos/effect`): step `one` at once, then step `two`, which holds
  for `data.hold_s` seconds (default 0) first: a kill lands mostly inside step two, after
  step one was recorded.
- Cron functions, registered only when the daemon's environment asks for them (other
  chaos daemons should not fire hundreds of ticks a minute):
  `CHAOS_MINUTE_CRONS=N`: `chaos-minute-000`.. every minute; `CHAOS_DAY_CRONS=1`: also
  `chaos-hourly` (`0 * * * *`) and `chaos-daily` (`0 0 * * *`); `CHAOS_POLICY_CRONS=1`:
  `chaos-missed-once`, `-all`, `-skip`, every minute, one per missed-tick policy. Each
  tick's run records (function, tick) in `chaos_ticks`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import trio

from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.functions import CronTrigger, EventTrigger, MissedTicks, Registry

EFFECT_EVENT = "chaos/effect"
EFFECT_FUNCTION = "chaos-effect"

# Created by the test (as the schema's owner) in each chaos database.
SCHEMA = """
CREATE TABLE chaos_effects (
    run_id uuid NOT NULL,
    step_id text NOT NULL,
    pid integer NOT NULL,
    recorded_before boolean NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE chaos_ticks (
    function_id text NOT NULL,
    tick_at timestamptz NOT NULL,
    run_id uuid NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
GRANT SELECT, INSERT ON chaos_effects, chaos_ticks TO deneva_system;
"""

_EFFECT = (
    "INSERT INTO chaos_effects (run_id, step_id, pid, recorded_before) VALUES ($1, $2, $3, "
    "EXISTS (SELECT 1 FROM engine_steps WHERE run_id = $1 AND step_id = $2))"
)
_TICK = "INSERT INTO chaos_ticks (function_id, tick_at, run_id, pid) VALUES ($1, $2, $3, $4)"


def minute_cron_id(index: int) -> str:
    return f"chaos-minute-{index:03d}"


POLICIES: tuple[MissedTicks, ...] = ("once", "all", "skip")


def register(registry: Registry, db: Callable[[], Database]) -> None:
    pid = os.getpid()

    async def effect(ctx: Context, step_id: str) -> str:
        await db().execute(_EFFECT, ctx.run_id, step_id, pid)
        return step_id

    @registry.function(EFFECT_FUNCTION, EventTrigger(EFFECT_EVENT))
    async def chaos_effect(ctx: Context) -> Any:
        await ctx.step.run("one", effect, ctx, "one")

        async def two() -> str:
            await trio.sleep(float(ctx.data.get("hold_s", 0)))
            return await effect(ctx, "two")

        await ctx.step.run("two", two)
        return ctx.data.get("n")

    async def record_tick(ctx: Context) -> None:
        tick = datetime.fromisoformat(ctx.data["tick"])
        await ctx.step.run("tick", lambda: db().execute(_TICK, ctx.function_id, tick, ctx.run_id, pid))

    def cron(function_id: str, expression: str, missed: MissedTicks = "once") -> None:
        registry.function(function_id, CronTrigger(expression, missed=missed))(record_tick)

    for index in range(int(os.environ.get("CHAOS_MINUTE_CRONS", "0"))):
        cron(minute_cron_id(index), "* * * * *")
    if os.environ.get("CHAOS_DAY_CRONS") == "1":
        cron("chaos-hourly", "0 * * * *")
        cron("chaos-daily", "0 0 * * *")
    if os.environ.get("CHAOS_POLICY_CRONS") == "1":
        for policy in POLICIES:
            cron(f"chaos-missed-{policy}", "* * * * *", policy)
