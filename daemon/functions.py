"""Every function the daemon registers: the engine's diagnostics, the canary, the
ad-platform sync and the janitor's retention passes. Functions are registered before
the daemon has what they run on (`deneva functions` lists them either way); each group's
services are bound once it does, and until then a run of one fails with a clear reason.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from deneva.backoff import Backoff
from deneva.canary import CanaryServices, register_canary
from deneva.engine.builtin import register_builtin
from deneva.engine.errors import NonRetriableError
from deneva.engine.functions import Registry
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


def app_registry() -> AppFunctions:
    registry = register_builtin(Registry())
    canary: Bound[CanaryServices] = Bound("the engine canary")
    register_canary(registry, canary.get)
    sync = register_sync(registry, SyncRuntime())
    janitor: Bound[JanitorServices] = Bound("the janitor")
    register_retention(registry, janitor.get)
    return AppFunctions(registry, sync, canary, janitor)
