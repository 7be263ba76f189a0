"""The adapters by platform name, and the report types each platform serves."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from deneva.adapters.base import (
    DATE_RANGES,
    PLATFORMS,
    REPORT_TYPES,
    Platform,
    PlatformConfig,
    check_date_range,
    check_platform,
    check_report_type,
)
from deneva.adapters.google import GoogleAds
from deneva.adapters.meta import MetaAds
from deneva.adapters.tiktok import TikTokAds

__all__ = ["DATE_RANGES", "PLATFORMS", "REPORT_TYPES", "adapter_for", "adapters_for", "check_report"]


def adapters_for(config: PlatformConfig, *, http: httpx.AsyncClient | None = None) -> dict[str, Platform]:
    """One adapter per platform. With `http`, they share that client (the caller closes it);
    without, each operation opens and closes a client of its own."""
    return {
        "google": GoogleAds(config, http=http),
        "meta": MetaAds(config, http=http),
        "tiktok": TikTokAds(config, http=http),
    }


def adapter_for(adapters: Mapping[str, Platform], platform: str) -> Platform:
    """The adapter for `platform`, or `invalid_request` naming the known platforms."""
    check_platform(platform)
    return adapters[platform]


def check_report(platform: str, report_type: str, date_range: str) -> None:
    """`invalid_request` unless `platform` serves `report_type` over `date_range`."""
    check_report_type(platform, report_type)
    check_date_range(platform, date_range)
