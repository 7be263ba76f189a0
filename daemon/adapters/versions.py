"""The platforms' API versions: the ones deneva speaks by default, and when each one is
switched off (its published sunset date), so that a daemon warns before its version goes
and refuses to start on one that has gone.

Sources, read on 3 December 2026 (README, "API versions", lists them):

- Google Ads API: each version's sunset reminder on the Google Ads developer blog (v14
  to v22: exact dates). v23 to v26 have only the month Google projected when it moved
  to four major releases a year ("More frequent releases coming", 4 September 2025):
  they are kept as the first day of that month and marked `projected`, so the warning
  comes early and a projected date never stops a start by itself. Google recommends
  v26 to new users; developer tokens were sunset on 9 September 2026 (the header is
  optional and ignored).
- Meta Marketing API: the version history's expiration dates (the Ads endpoints
  expire before the Graph API's: v19.0 on 4 February 2025 for ads, 21 May 2026 for the
  Graph API). v26.0 and v27.0 have none published yet.
- TikTok Business API: v1.3 is current with no end date; v1.2 ended on 15 August 2023.

A version older than every listed one of its platform counts as sunset; one newer than
all of them, or otherwise absent, is `unlisted` (deneva cannot tell its sunset).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Final, Literal

import attrs

WARN_DAYS: Final = 60

# The versions the adapters speak unless configured otherwise.
CURRENT: Final[Mapping[str, str]] = {"google": "v26", "meta": "v27.0", "tiktok": "v1.3"}
# The configuration key that chooses each platform's version (`deneva.config`).
CONFIG_KEYS: Final[Mapping[str, str]] = {
    "google": "google_ads_api_version",
    "meta": "meta_api_version",
    "tiktok": "tiktok_api_version",
}
API_NAMES: Final[Mapping[str, str]] = {
    "google": "Google Ads API",
    "meta": "Meta Marketing API",
    "tiktok": "TikTok Business API",
}

Status = Literal["current", "sunsetting", "sunset", "unlisted"]


@attrs.frozen
class Sunset:
    """When a version stops answering; `projected`: only the month was announced (the
    first of it is kept)."""

    day: date
    projected: bool = False


def _projected(year: int, month: int) -> Sunset:
    return Sunset(date(year, month, 1), projected=True)


# Platform -> version -> its sunset (None: none published).
SUNSETS: Final[Mapping[str, Mapping[str, Sunset | None]]] = {
    "google": {
        "v14": Sunset(date(2024, 6, 5)),
        "v15": Sunset(date(2024, 9, 25)),
        "v16": Sunset(date(2025, 2, 5)),
        "v17": Sunset(date(2025, 6, 4)),
        "v18": Sunset(date(2025, 8, 20)),
        "v19": Sunset(date(2026, 2, 11)),
        "v20": Sunset(date(2026, 6, 10)),
        "v21": Sunset(date(2026, 8, 5)),
        "v22": Sunset(date(2026, 10, 7)),
        "v23": _projected(2027, 2),
        "v24": _projected(2027, 5),
        "v25": _projected(2027, 8),
        "v26": _projected(2027, 11),
    },
    "meta": {
        "v16.0": Sunset(date(2024, 2, 6)),
        "v17.0": Sunset(date(2024, 5, 14)),
        "v18.0": Sunset(date(2024, 8, 13)),
        "v19.0": Sunset(date(2025, 2, 4)),
        "v20.0": Sunset(date(2025, 5, 6)),
        "v21.0": Sunset(date(2025, 9, 9)),
        "v22.0": Sunset(date(2026, 2, 19)),
        "v23.0": Sunset(date(2026, 6, 9)),
        "v24.0": Sunset(date(2026, 11, 10)),
        "v25.0": Sunset(date(2027, 2, 23)),
        "v26.0": None,
        "v27.0": None,
    },
    "tiktok": {
        "v1.2": Sunset(date(2023, 8, 15)),
        "v1.3": None,
    },
}


def version_key(version: str) -> tuple[int, ...] | None:
    """ "v26" -> (26,), "v27.0" -> (27, 0); None for anything else."""
    if not re.fullmatch(r"v\d{1,3}(\.\d{1,3})?", version):
        return None
    return tuple(int(part) for part in version[1:].split("."))


def env_name(key: str) -> str:
    return f"DENEVA_{key.upper()}"


@attrs.frozen
class VersionStatus:
    """One configured version on a given day."""

    platform: str
    version: str
    status: Status
    sunset: Sunset | None = None
    days_left: int | None = None  # days until the sunset (0 or less: the day has come)

    @property
    def key(self) -> str:
        return CONFIG_KEYS[self.platform]

    @property
    def replacement(self) -> str:
        return CURRENT[self.platform]

    def message(self) -> str:
        """What an operator reads in the log: what is wrong, which key, what to set."""
        api = f"{API_NAMES[self.platform]} {self.version}"
        fix = (
            f"Set {self.key} ({env_name(self.key)}) to {self.replacement}, "
            f"or leave it unset for deneva's default {self.replacement}"
        )
        when = self.sunset
        if self.status == "sunset":
            said = f"was sunset on {when.day.isoformat()}" if when else "is older than every listed version"
            return f"{self.key}: {api} {said}; its calls fail. {fix}"
        if self.status == "sunsetting" and when is not None:
            if when.projected:
                month = when.day.strftime("%B %Y")
                return (
                    f"{self.key}: {api} is projected to be sunset in {month} (no exact date yet; check "
                    f"the platform's sunset page). {fix}"
                )
            days = f"{self.days_left} day{'' if self.days_left == 1 else 's'}"
            return f"{self.key}: {api} will be sunset on {when.day.isoformat()}, in {days}. {fix}"
        if self.status == "unlisted":
            return (
                f"{self.key}: {api} is not in deneva's table of versions, so its sunset date is unknown "
                f"(deneva's default is {self.replacement})"
            )
        return f"{self.key}: {api} is current"

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sunset": None if self.sunset is None else self.sunset.day.isoformat(),
            "sunsetProjected": None if self.sunset is None else self.sunset.projected,
            "daysLeft": self.days_left,
            "status": self.status,
            "replacement": None if self.status == "current" else self.replacement,
        }


def version_status(platform: str, version: str, today: date) -> VersionStatus:
    """How `version` of `platform` stands on `today` (see the module doc)."""
    table = SUNSETS[platform]
    if version not in table:
        mine = version_key(version)
        known = [k for k in (version_key(v) for v in table) if k is not None]
        if mine is not None and known and mine < min(known):
            return VersionStatus(platform, version, "sunset")
        return VersionStatus(platform, version, "unlisted")
    sunset = table[version]
    if sunset is None:
        return VersionStatus(platform, version, "current")
    days_left = (sunset.day - today).days
    if days_left <= 0 and not sunset.projected:
        status: Status = "sunset"
    elif days_left <= WARN_DAYS:
        status = "sunsetting"
    else:
        status = "current"
    return VersionStatus(platform, version, status, sunset, days_left)


def version_statuses(versions: Mapping[str, str], today: date) -> dict[str, VersionStatus]:
    """The status of each platform's version in `versions` (platform -> version)."""
    return {platform: version_status(platform, version, today) for platform, version in versions.items()}
