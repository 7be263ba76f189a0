"""Every function the daemon registers: the engine's diagnostics and the ad-platform
sync. The sync functions are bound to their services (database, KEK, adapters) once
the daemon has them; until then a run of one fails with a clear reason."""

from __future__ import annotations

from deneva.engine.builtin import register_builtin
from deneva.engine.functions import Registry
from deneva.sync.worker import SyncRuntime, register_sync


def app_registry() -> tuple[Registry, SyncRuntime]:
    registry = register_builtin(Registry())
    runtime = SyncRuntime()
    register_sync(registry, runtime)
    return registry, runtime
