"""Every function the daemon registers: the engine's diagnostics, the canary, the
ad-platform sync and the janitor's retention passes, and those of the operator's
`functions_module`, if configured. Functions are registered before
the daemon has what they run on (`deneva functions` lists them either way); each group's
services are bound once it does, and until then a run of one fails with a clear reason.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

import attrs

from deneva.backoff import Backoff
from deneva.canary import CanaryServices, register_canary
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.errors import EngineError, NonRetriableError
from deneva.engine.functions import Registry
from deneva.errors import ConfigError
from deneva.retention import JanitorServices, register_retention
from deneva.sync.model import SyncRuntime, SyncServices
from deneva.sync.schedule import register_schedules
from deneva.sync.tokens import register_token_refresh
from deneva.sync.versions import register_version_check
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
    """The ad-platform sync: the worker, the cache's schedules, the token refresh and the
    daily check of the API versions against their sunset dates."""
    runtime = services if isinstance(services, SyncRuntime) else SyncRuntime(services)
    register_worker(registry, runtime, backoff)
    register_schedules(registry, lambda: runtime.get().db, lambda: tuple(runtime.get().adapters))
    register_token_refresh(registry, runtime.get)
    register_version_check(registry, lambda: runtime.services)
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
