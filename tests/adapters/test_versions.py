"""The platforms' API versions: deneva's defaults, and where each configured version
stands on a given day (the days are fixed here, never today's)."""

from __future__ import annotations

from datetime import date

import pytest

from deneva.adapters import PlatformConfig
from deneva.adapters.versions import CURRENT, SUNSETS, version_status, version_statuses

DAY = date(2026, 12, 3)


def test_the_defaults_are_the_current_versions() -> None:
    assert CURRENT == {"google": "v26", "meta": "v27.0", "tiktok": "v1.3"}
    config = PlatformConfig()
    assert (config.google_api_version, config.meta_api_version, config.tiktok_api_version) == (
        "v26",
        "v27.0",
        "v1.3",
    )
    assert [config.api_version(p) for p in ("google", "meta", "tiktok")] == ["v26", "v27.0", "v1.3"]


def test_every_default_is_in_the_table() -> None:
    for platform, version in CURRENT.items():
        assert version in SUNSETS[platform]


@pytest.mark.parametrize(
    ("platform", "version", "day", "status", "days_left"),
    [
        ("google", "v17", DAY, "sunset", -547),
        ("google", "v22", date(2026, 10, 7), "sunset", 0),  # the sunset day itself
        ("google", "v22", date(2026, 10, 6), "sunsetting", 1),
        ("google", "v22", date(2026, 8, 8), "sunsetting", 60),
        ("google", "v22", date(2026, 8, 7), "current", 61),
        ("google", "v26", DAY, "current", 333),
        ("meta", "v19.0", DAY, "sunset", -667),
        ("meta", "v24.0", DAY, "sunset", -23),
        ("meta", "v25.0", DAY, "current", 82),
        ("meta", "v25.0", date(2026, 12, 25), "sunsetting", 60),
        ("meta", "v25.0", date(2026, 12, 24), "current", 61),
        ("meta", "v27.0", DAY, "current", None),
        ("tiktok", "v1.3", DAY, "current", None),
        ("tiktok", "v1.2", DAY, "sunset", -1206),
    ],
)
def test_a_version_stands_by_its_published_sunset(
    platform: str, version: str, day: date, status: str, days_left: int | None
) -> None:
    found = version_status(platform, version, day)
    assert (found.status, found.days_left) == (status, days_left)


def test_a_projected_month_warns_from_its_first_day_but_never_counts_as_sunset() -> None:
    early = version_status("google", "v23", date(2026, 12, 15))  # projected for February 2027
    assert (early.status, early.days_left) == ("sunsetting", 48)
    assert early.sunset is not None and early.sunset.projected
    assert "projected to be sunset in February 2027" in early.message()
    late = version_status("google", "v23", date(2027, 2, 20))  # past the 1st: no exact date known
    assert (late.status, late.days_left) == ("sunsetting", -19)


def test_versions_outside_the_table() -> None:
    older = version_status("meta", "v12.0", DAY)
    assert (older.status, older.sunset, older.days_left) == ("sunset", None, None)
    assert "older than every listed version" in older.message()
    newer = version_status("google", "v27", DAY)
    assert newer.status == "unlisted"
    assert "not in deneva's table" in newer.message()


def test_the_messages_name_the_key_its_variable_and_the_replacement() -> None:
    gone = version_status("google", "v22", DAY)
    assert gone.message() == (
        "google_ads_api_version: Google Ads API v22 was sunset on 2026-10-07; its calls fail. Set "
        "google_ads_api_version (DENEVA_GOOGLE_ADS_API_VERSION) to v26, or leave it unset for deneva's "
        "default v26"
    )
    soon = version_status("meta", "v25.0", date(2027, 1, 3))
    assert soon.message().startswith(
        "meta_api_version: Meta Marketing API v25.0 will be sunset on 2027-02-23, in 51 days. Set "
        "meta_api_version (DENEVA_META_API_VERSION) to v27.0"
    )


def test_statuses_as_json() -> None:
    statuses = version_statuses({"google": "v26", "meta": "v24.0", "tiktok": "v1.3"}, DAY)
    assert {p: s.as_json() for p, s in statuses.items()} == {
        "google": {
            "version": "v26",
            "sunset": "2027-11-01",
            "sunsetProjected": True,
            "daysLeft": 333,
            "status": "current",
            "replacement": None,
        },
        "meta": {
            "version": "v24.0",
            "sunset": "2026-11-10",
            "sunsetProjected": False,
            "daysLeft": -23,
            "status": "sunset",
            "replacement": "v27.0",
        },
        "tiktok": {
            "version": "v1.3",
            "sunset": None,
            "sunsetProjected": None,
            "daysLeft": None,
            "status": "current",
            "replacement": None,
        },
    }
