"""Sunset awareness (issue 12 item 2): the platform API versions the sync speaks, checked
against their published sunset dates (`deneva.adapters.versions`).

- At start (`check_at_start`, from `deneva run`): a synced platform whose version is
  sunset stops the start, naming the key, its variable and the replacement; one within
  60 days of its sunset (or projected to be, or not in deneva's table) is logged as a
  warning.
- Daily: the engine function `api-version-check` (cron 06:00 UTC, one run a day however
  many replicas share the database) logs the same warnings, and an error for a version
  that has gone while the daemon ran; its run output holds the statuses.
- On demand: `api_versions` is the `apiVersions` object of `get_sync_status` and
  `/admin/metrics/sync`: per synced platform `{version, sunset, sunsetProjected,
  daysLeft, status, replacement}`.

"Today" is the UTC date of the one clock, so tests move it like any other time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from deneva.adapters.base import Platform
from deneva.adapters.versions import VersionStatus, version_statuses
from deneva.engine.context import Context
from deneva.engine.functions import CronTrigger, Function, Registry
from deneva.errors import ConfigError
from deneva.sync.model import SyncServices

log = logging.getLogger("deneva.versions")

VERSION_CHECK = "api-version-check"
CRON = "0 6 * * *"


def utc_day(now: float) -> date:
    return datetime.fromtimestamp(now, UTC).date()


def versions_in_use(adapters: Mapping[str, Platform]) -> dict[str, str]:
    """Platform -> the API version its adapter speaks."""
    return {platform: adapter.api_version for platform, adapter in sorted(adapters.items())}


def statuses_of(adapters: Mapping[str, Platform], now: float) -> dict[str, VersionStatus]:
    return version_statuses(versions_in_use(adapters), utc_day(now))


def api_versions(adapters: Mapping[str, Platform], now: float) -> dict[str, dict[str, Any]]:
    """The `apiVersions` object of the status answers."""
    return {platform: status.as_json() for platform, status in statuses_of(adapters, now).items()}


def log_statuses(statuses: Mapping[str, VersionStatus]) -> list[VersionStatus]:
    """Log every version that is not current (errors for sunset ones); those, in order."""
    noted = [s for s in statuses.values() if s.status != "current"]
    for status in noted:
        extra = {"platform": status.platform, "version": status.version, "status": status.status}
        if status.status == "sunset":
            log.error(status.message(), extra=extra)
        else:
            log.warning(status.message(), extra=extra)
    return noted


def check_at_start(adapters: Mapping[str, Platform], now: float) -> dict[str, VersionStatus]:
    """Refuse to start on a sunset version (ConfigError naming each one); warn of the
    others that are not current."""
    statuses = statuses_of(adapters, now)
    gone = [s for s in statuses.values() if s.status == "sunset"]
    if gone:
        raise ConfigError("; ".join(s.message() for s in gone))
    log_statuses(statuses)
    return statuses


def register_version_check(registry: Registry, services_of: Callable[[], SyncServices | None]) -> Function:
    """The daily check; a daemon that syncs no platform checks nothing (and says so)."""

    async def check(ctx: Context) -> dict[str, Any]:
        services = services_of()
        if services is None:
            return {"apiVersions": {}, "notCurrent": []}
        statuses = statuses_of(services.adapters, services.clock.now())
        noted = log_statuses(statuses)
        return {
            "apiVersions": {p: s.as_json() for p, s in statuses.items()},
            "notCurrent": [s.platform for s in noted],
        }

    return registry.add(Function(VERSION_CHECK, check, (CronTrigger(CRON, missed="once"),), retries=0))
