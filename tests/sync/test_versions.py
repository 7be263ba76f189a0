"""Sunset awareness: a sunset API version stops `deneva run` naming the key and the
replacement, one within 60 days of its sunset is a warning at start and every day (the
`api-version-check` cron), and the statuses are what the status answers show. Days are
fixed (an injected clock), never today's."""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from deneva.adapters import PlatformConfig, adapters_for
from deneva.config import Config
from deneva.credentials import Keyring
from deneva.db import Database
from deneva.engine.functions import Registry
from deneva.errors import ConfigError
from deneva.functions import app_registry
from deneva.runtime import Daemon
from deneva.sdnotify import Notifier
from deneva.secrets import init_secrets, load_secrets
from deneva.sync.model import SyncRuntime, SyncServices
from deneva.sync.versions import VERSION_CHECK, api_versions, check_at_start, register_version_check
from tests.engine.conftest import running_engine

KEYS = Keyring(os.urandom(32))
GOOGLE_FILES = {
    "DENEVA_GOOGLE_CLIENT_ID": "deneva-sandbox.apps.googleusercontent.com",
    "DENEVA_GOOGLE_CLIENT_SECRET": "sandbox-client-secret",
}


def at(day: date, hour: int = 0) -> float:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).timestamp()


class DayClock:
    """A wall clock stopped at one instant."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now

    async def sleep_until(self, when: float) -> None:
        raise AssertionError("nothing sleeps on this clock here")


def _secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    init_secrets(directory)
    for name, value in GOOGLE_FILES.items():
        (directory / name).write_text(value + "\n")
    return directory


def test_a_sunset_version_stops_the_start_naming_each_key_and_its_replacement() -> None:
    adapters = adapters_for(PlatformConfig(google_api_version="v22", meta_api_version="v24.0"))
    with pytest.raises(ConfigError) as info:
        check_at_start(adapters, at(date(2026, 12, 3)))
    message = str(info.value)
    assert "google_ads_api_version: Google Ads API v22 was sunset on 2026-10-07" in message
    assert "Set google_ads_api_version (DENEVA_GOOGLE_ADS_API_VERSION) to v26" in message
    assert "meta_api_version: Meta Marketing API v24.0 was sunset on 2026-11-10" in message
    assert "Set meta_api_version (DENEVA_META_API_VERSION) to v27.0" in message
    assert "tiktok" not in message


def test_a_version_close_to_its_sunset_is_a_warning_at_start(caplog: pytest.LogCaptureFixture) -> None:
    adapters = adapters_for(PlatformConfig(meta_api_version="v25.0"))
    with caplog.at_level(logging.INFO, logger="deneva.versions"):
        statuses = check_at_start(adapters, at(date(2027, 1, 24)))
    assert {p: s.status for p, s in statuses.items()} == {
        "google": "current",
        "meta": "sunsetting",
        "tiktok": "current",
    }
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.platform == "meta"  # type: ignore[attr-defined]
    assert record.getMessage().startswith(
        "meta_api_version: Meta Marketing API v25.0 will be sunset on 2027-02-23, in 30 days."
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="deneva.versions"):
        check_at_start(adapters, at(date(2026, 12, 24)))  # 61 days before: nothing to say
        check_at_start(adapters_for(PlatformConfig()), at(date(2027, 1, 24)))
    assert caplog.records == []


def test_api_versions_are_the_adapters_on_the_clocks_day() -> None:
    adapters = adapters_for(PlatformConfig(tiktok_api_version="v1.2"))
    shown = api_versions({"tiktok": adapters["tiktok"]}, at(date(2026, 12, 3), hour=23))
    assert shown == {
        "tiktok": {
            "version": "v1.2",
            "sunset": "2023-08-15",
            "sunsetProjected": False,
            "daysLeft": -1206,
            "status": "sunset",
            "replacement": "v1.3",
        }
    }


async def test_the_daily_check_warns_each_day_and_says_when_a_version_has_gone(
    db: Database, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry()
    runtime = SyncRuntime()
    register_version_check(registry, lambda: runtime.services)
    # Meta's v24.0 expired on 2026-11-10: the check at 06:00 on the 9th warns, on the 10th errs.
    # Each day the engine starts a few minutes before the tick (a day of idle virtual time
    # between them would only be slow).
    adapters = adapters_for(PlatformConfig(meta_api_version="v24.0"))
    with caplog.at_level(logging.INFO, logger="deneva.versions"):
        for day in (date(2026, 11, 9), date(2026, 11, 10)):
            epoch = at(day, hour=6) - 180
            async with running_engine(db, registry, epoch=epoch, poll_s=600, rescue_every_s=600) as engine:
                runtime.services = SyncServices(db, KEYS, {"meta": adapters["meta"]}, engine.clock)
                await trio.sleep(360)
                runs = await engine.list_runs(function_id=VERSION_CHECK)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    outputs = sorted((r.output for r in runs), key=lambda o: -o["apiVersions"]["meta"]["daysLeft"])
    assert [(o["apiVersions"]["meta"]["daysLeft"], o["apiVersions"]["meta"]["status"]) for o in outputs] == [
        (1, "sunsetting"),
        (0, "sunset"),
    ]
    assert [o["notCurrent"] for o in outputs] == [["meta"], ["meta"]]
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "deneva.versions"]
    assert said == [
        (
            logging.WARNING,
            "meta_api_version: Meta Marketing API v24.0 will be sunset on 2026-11-10, in 1 day. Set "
            "meta_api_version (DENEVA_META_API_VERSION) to v27.0, or leave it unset for deneva's default "
            "v27.0",
        ),
        (
            logging.ERROR,
            "meta_api_version: Meta Marketing API v24.0 was sunset on 2026-11-10; its calls fail. Set "
            "meta_api_version (DENEVA_META_API_VERSION) to v27.0, or leave it unset for deneva's default "
            "v27.0",
        ),
    ]


async def test_a_daemon_without_sync_checks_nothing_daily(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()
    register_version_check(registry, lambda: None)
    async with running_engine(db, registry, epoch=at(date(2026, 11, 8), 6) - 60, poll_s=600) as engine:
        await trio.sleep(300)
        [run] = await engine.list_runs(function_id=VERSION_CHECK)
    assert (run.status, run.output) == ("succeeded", {"apiVersions": {}, "notCurrent": []})


def test_the_daily_check_is_a_registered_cron_function() -> None:
    function = app_registry().registry.get(VERSION_CHECK)
    assert [t.expression for t in function.triggers] == ["0 6 * * *"]  # type: ignore[union-attr]


async def test_deneva_run_refuses_a_sunset_version_before_anything_starts(tmp_path: Path) -> None:
    secrets = load_secrets(_secrets(tmp_path))
    state = tmp_path / "state"
    config = Config(state_dir=state, google_ads_api_version="v22")
    daemon = Daemon(config, secrets, clock=DayClock(at(date(2026, 12, 3))), notifier=Notifier(None))
    with pytest.raises(ConfigError, match=r"^google_ads_api_version: Google Ads API v22 was sunset") as info:
        await daemon.run()
    assert "DENEVA_GOOGLE_ADS_API_VERSION) to v26" in str(info.value)
    assert not state.exists()  # no lock taken, no Postgres started


def test_only_synced_platforms_are_checked_and_the_demo_is_not(tmp_path: Path) -> None:
    secrets = load_secrets(_secrets(tmp_path))
    clock = DayClock(at(date(2026, 12, 3)))
    # Meta's files are missing: meta is not synced, its sunset version is no reason to stop.
    Daemon(
        Config(meta_api_version="v19.0"), secrets, clock=clock, notifier=Notifier(None)
    ).check_api_versions()
    gone = Config(google_ads_api_version="v17")
    Daemon(gone, secrets, clock=clock, notifier=Notifier(None), demo=True).check_api_versions()
    with pytest.raises(ConfigError, match="v17 was sunset on 2025-06-04"):
        Daemon(gone, secrets, clock=clock, notifier=Notifier(None)).check_api_versions()


async def test_the_daemon_reports_the_synced_platforms_versions(tmp_path: Path, db: Database) -> None:
    secrets = load_secrets(_secrets(tmp_path))
    clock = DayClock(at(date(2026, 12, 3)))
    daemon = Daemon(Config(google_ads_api_version="v23"), secrets, clock=clock, notifier=Notifier(None))
    assert daemon.api_versions() == {}  # nothing bound yet
    assert daemon.sync_runtime is not None
    daemon._bind_platforms(daemon.sync_runtime, db, "test")
    shown = daemon.api_versions()
    assert set(shown) == {"google", "tiktok"}  # meta is not synced
    assert shown["google"] == {
        "version": "v23",
        "sunset": "2027-02-01",
        "sunsetProjected": True,
        "daysLeft": 60,
        "status": "sunsetting",
        "replacement": "v26",
    }
