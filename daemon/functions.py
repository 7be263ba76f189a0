"""Every function the daemon registers: the engine's diagnostics, the canary, the
ad-platform sync and the janitor's retention passes, and those of the operator's
`functions_module`, if configured. Functions are registered before
the daemon has what they run on (`deneva functions` lists them either way); each group's
services are bound once it does, and until then a run of one fails with a clear reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from deneva.backoff import Backoff
from deneva.canary import CanaryServices, register_canary
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.cron import parse_cron
from deneva.engine.engine import ENGINE
from deneva.engine.errors import EngineError, NonRetriableError
from deneva.engine.functions import CronTrigger, Function, Registry
from deneva.engine.model import PauseRecord
from deneva.errors import ConfigError
from deneva.retention import JanitorServices, register_retention
from deneva.sync.model import SyncRuntime, SyncServices
from deneva.sync.schedule import register_schedules
from deneva.sync.tokens import register_token_refresh
from deneva.sync.versions import register_version_check
from deneva.sync.webhooks import register_meta_webhooks
from deneva.sync.worker import register_worker

T = TypeVar("T")


class Bound(Generic[T]):
    """Services bound once the daemon has them."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.value: T | None = None

    def get(self) -> T:
        if self.value is None:
            raise NonRetriableError(f"{self.what} is not configured in this process")
        return self.value


def register_sync(
    registry: Registry, services: SyncServices | SyncRuntime, backoff: Backoff | None = None
) -> SyncRuntime:
    """The ad-platform sync: the worker, the cache's schedules, the token refresh, the
    daily check of the API versions against their sunset dates and the refreshes Meta's
    change notifications ask for."""
    runtime = services if isinstance(services, SyncRuntime) else SyncRuntime(services)
    register_worker(registry, runtime, backoff)
    register_schedules(registry, lambda: runtime.get().db, lambda: tuple(runtime.get().adapters))
    register_token_refresh(registry, runtime.get)
    register_version_check(registry, lambda: runtime.services)
    register_meta_webhooks(registry, lambda: runtime.get().db, lambda: tuple(runtime.get().adapters))
    return runtime


@attrs.frozen
class AppFunctions:
    registry: Registry
    sync: SyncRuntime
    canary: Bound[CanaryServices]
    janitor: Bound[JanitorServices]
    database: Bound[Database]  # what the functions module's functions reach the database with


FUNCTIONS_MODULE_KEY = "DENEVA_FUNCTIONS_MODULE"


def load_functions_module(registry: Registry, name: str, db: Callable[[], Database]) -> None:
    """Import `name` and call its `register(registry, db)`: the operator's own durable
    functions, beside the daemon's (`db()` is the daemon's pool once it runs; a run that
    starts before then fails, saying so). Any problem is a ConfigError naming the key."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"{FUNCTIONS_MODULE_KEY}: cannot import {name!r} ({exc})") from None
    register = getattr(module, "register", None)
    if not callable(register):
        raise ConfigError(f"{FUNCTIONS_MODULE_KEY}: module {name!r} has no register(registry, db) function")
    try:
        register(registry, db)
    except EngineError as exc:
        raise ConfigError(f"{FUNCTIONS_MODULE_KEY}: {name}.register: {exc}") from None


def app_registry(functions_module: str | None = None) -> AppFunctions:
    registry = register_builtin(Registry())
    canary: Bound[CanaryServices] = Bound("the engine canary")
    register_canary(registry, canary.get)
    sync = register_sync(registry, SyncRuntime())
    janitor: Bound[JanitorServices] = Bound("the janitor")
    register_retention(registry, janitor.get)
    database: Bound[Database] = Bound("the database")
    if functions_module is not None:
        load_functions_module(registry, functions_module, database.get)
    return AppFunctions(registry, sync, canary, janitor, database)


def trigger_texts(function: Function, schedules: Mapping[str, str]) -> list[str]:
    """A function's triggers in words (`deneva functions`, the console): its crons, its
    events (with their match), the janitor's schedule for a retention pass."""
    out = []
    for trigger in function.triggers:
        if isinstance(trigger, CronTrigger):
            out.append(f"cron {trigger.schedule}")
        else:
            match = "".join(f" if {k} == {v!r}" for k, v in (trigger.match or {}).items())
            out.append(f"event {trigger.name}{match}")
    if function.id in schedules:
        out.append(f"janitor {schedules[function.id]}")
    return out or ["invoke only"]


@attrs.frozen
class FunctionState:
    """A registered function as operators see it: triggers, pause, ticks."""

    function: Function
    triggers: tuple[str, ...]
    paused: PauseRecord | None  # the pause that holds it (its own, or the engine's)
    paused_with: str | None  # "function", "engine" or None
    next_tick: float | None  # its next cron (or janitor) tick, None without a schedule
    last_tick: float | None  # the latest tick recorded (any replica)

    @property
    def id(self) -> str:
        return self.function.id

    def as_json(self) -> dict[str, Any]:
        """`deneva functions --json`'s row."""
        f, pause = self.function, self.paused
        return {
            "id": f.id,
            "triggers": list(self.triggers),
            "retries": f.retries,
            "concurrency": None
            if f.concurrency is None
            else {"limit": f.concurrency.limit, "key": f.concurrency.key},
            "timeoutS": f.timeout_s,
            "state": "active" if pause is None else "paused",
            "pausedAt": None if pause is None else pause.paused_at.isoformat(),
            "pausedWith": self.paused_with,
        }


def function_states(
    registry: Registry,
    schedules: Mapping[str, str],
    paused: Sequence[PauseRecord],
    now: float,
    last_ticks: Mapping[str, float] | None = None,
) -> list[FunctionState]:
    """Every registered function, by id, with what holds it and when it next fires."""
    held = {p.function_id: p for p in paused}
    engine_pause = held.get(ENGINE)
    out = []
    for f in registry.all():
        pause = held.get(f.id) or engine_pause
        crons = [t.schedule for t in f.cron_triggers()]
        if f.id in schedules:
            crons.append(parse_cron(schedules[f.id]))
        next_tick = min((c.next_after(now) for c in crons), default=None)
        out.append(
            FunctionState(
                f,
                tuple(trigger_texts(f, schedules)),
                pause,
                None if pause is None else ("engine" if pause is engine_pause else "function"),
                next_tick,
                (last_ticks or {}).get(f.id),
            )
        )
    return out
