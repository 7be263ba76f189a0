"""The sync's shared values: its event names, what a refresh is for, the services its
functions run on. Every sync module imports these; none of them imports another's
internals (this module breaks what used to be a cycle of worker, schedule and tokens).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from typing import Any, Protocol

import attrs
import trio

from deneva.adapters import PlatformError
from deneva.adapters.base import Platform
from deneva.adapters.registry import check_report
from deneva.clock import Clock
from deneva.credentials import Keyring
from deneva.db import Database
from deneva.engine.errors import NonRetriableError
from deneva.sync.cache import CacheKey
from deneva.sync.cadence import cadence_for

REFRESH_EVENT = "sync/report.refresh-requested"
TOKEN_EVENT = "sync/token.refresh-requested"


class KeyedLocks:
    """One trio lock per key, made on first use and dropped when nobody holds or wants it."""

    def __init__(self) -> None:
        self._locks: dict[Any, tuple[trio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: Any) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (trio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class SyncMetrics(Protocol):
    """What the sync counts (`deneva.metrics.Metrics` is one)."""

    def platform_calls(self, platform: str, n: int = 1) -> None: ...

    def platform_error(self, platform: str, code: str) -> None: ...

    def token_refresh(self, platform: str, outcome: str) -> None: ...


class NoMetrics:
    def platform_calls(self, platform: str, n: int = 1) -> None:
        pass

    def platform_error(self, platform: str, code: str) -> None:
        pass

    def token_refresh(self, platform: str, outcome: str) -> None:
        pass


@attrs.frozen
class SyncServices:
    """What the sync functions run on, bound once the daemon has it."""

    db: Database
    keys: Keyring  # opens and seals the platform credentials (deneva.credentials)
    adapters: dict[str, Platform]
    clock: Clock
    today: Callable[[], date] = date.today
    owner: str = "deneva"  # who holds a credential's refresh lease (this process)
    token_locks: KeyedLocks = attrs.field(factory=KeyedLocks, eq=False)
    metrics: SyncMetrics = attrs.field(factory=NoMetrics, eq=False)


class SyncRuntime:
    """What the sync functions need at run time, bound once the daemon has it (the
    functions are registered before: `deneva functions` lists them either way)."""

    def __init__(self, services: SyncServices | None = None) -> None:
        self.services = services

    def get(self) -> SyncServices:
        if self.services is None:
            raise NonRetriableError("ad-platform sync is not configured in this process")
        return self.services


def not_synced(platform: str) -> PlatformError:
    """A platform this daemon has no adapter for (see deneva.sync.platforms)."""
    return PlatformError(
        "invalid_request",
        platform,
        f"{platform} is not synced by this daemon (see the `platforms` setting and its secret files)",
    )


class InvalidRefresh(NonRetriableError):
    """A refresh request for an unknown platform, report type or date range."""

    def __init__(self, target: RefreshTarget, error: PlatformError) -> None:
        super().__init__(error.message)
        self.target = target
        self.error = error


@attrs.frozen
class Account:
    """One connected ad account of a tenant (its credential's key)."""

    tenant_id: uuid.UUID
    platform: str
    account_id: str


@attrs.frozen
class RefreshTarget:
    tenant_id: uuid.UUID
    platform: str
    account_id: str
    report_type: str
    date_range: str

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> RefreshTarget:
        try:
            target = cls(
                uuid.UUID(str(data["tenant_id"])),
                str(data["platform"]),
                str(data["account_id"]),
                str(data["report_type"]),
                str(data["date_range"]),
            )
        except (KeyError, ValueError) as exc:
            raise NonRetriableError(f"refresh request: missing or bad field {exc}") from None
        try:
            check_report(target.platform, target.report_type, target.date_range)
        except PlatformError as exc:
            raise InvalidRefresh(target, exc) from None
        return target

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.tenant_id, self.platform, self.account_id, self.report_type, self.date_range)

    @property
    def account(self) -> Account:
        return Account(self.tenant_id, self.platform, self.account_id)

    @property
    def ttl_s(self) -> float:
        """How long the report stays fresh (its cadence's TTL; an hour off the cadence)."""
        cadence = cadence_for(self.platform, self.report_type)
        return cadence.ttl_s if cadence else 3600.0

    def event(self, event_id: str) -> dict[str, Any]:
        """The refresh request for this target, as an event with a chosen id."""
        return {
            "name": REFRESH_EVENT,
            "id": event_id,
            "data": {
                "tenant_id": str(self.tenant_id),
                "platform": self.platform,
                "account_id": self.account_id,
                "report_type": self.report_type,
                "date_range": self.date_range,
            },
        }


@attrs.frozen
class FanOut:
    """What a fan-out run did (seed 002): targets it enqueued, skipped (and why), and
    failed to enqueue (with the first reasons). A fan-out's output, as `deneva runs show`
    prints it."""

    processed: int = 0
    skipped: dict[str, int] = attrs.Factory(dict)
    failed: int = 0
    errors: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "skipped": dict(sorted(self.skipped.items())),
            "failed": self.failed,
            "errors": list(self.errors),
        }
