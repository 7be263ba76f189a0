"""The engine's own diagnostic functions (SPEC §8), used by benchmarks and the chaos suite."""

from __future__ import annotations

from typing import Any

from deneva.engine.context import Context
from deneva.engine.functions import EventTrigger, Function, Registry

NOOP_EVENT = "deneva/noop"
ONE_STEP_EVENT = "deneva/one-step"


async def noop(ctx: Context) -> None:
    return None


async def one_step(ctx: Context) -> Any:
    return await ctx.step.run("echo", lambda: ctx.data.get("value"))


def register_builtin(registry: Registry) -> Registry:
    registry.add(Function("deneva-noop", noop, (EventTrigger(NOOP_EVENT),)))
    registry.add(Function("deneva-one-step", one_step, (EventTrigger(ONE_STEP_EVENT),)))
    return registry


def default_registry() -> Registry:
    """Every function the daemon runs (the ad-platform sync registers its own here)."""
    return register_builtin(Registry())
