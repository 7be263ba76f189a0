"""The reports deneva serves: platforms, report types, date ranges, and the days each
report fetches. The vocabulary the adapters, the sync and the MCP tools share (none of
them owns it, so the MCP layer needs nothing from the adapters).

Report types follow seed 000 §B1; each maps onto one row schema (`deneva.adapters.rows`):

    report type         schema        google  meta  tiktok  history beyond the range
    account_health      campaign_day    x      x      x     the previous period; 14 days at least
    budget_optimizer    campaign_day    x      x      x     none
    weekly_anomaly      campaign_day    x      x      x     the 4 weeks before the last 7 days
    search_term_waste   search_term     x                   none
    quality_score       keyword         x                   none
    auction_insights    auction         x                   none
    pmax_breakdown      asset_group     x                   none

Date ranges are whole days ending yesterday, relative to `today`: `last_7_days` is
[today - 7, today - 1], as Google's LAST_7_DAYS. A report that compares asks the
platform for its history too, in the same call: its fetch window (`fetch_window`) is
the range and the days before it that its comparison reads. The cache key stays the
range; only what is fetched for it grows. Reports that sum over the period (search
terms, keywords, asset groups, auction insights, the budget optimizer) fetch the range
alone: their rows are period totals, so extra days would change the answer.

Seed 000's cadence also lists Meta `search_term_waste` and `auction_insights`; Meta's
API has neither, so asking for them is refused with that reason (`UNSUPPORTED`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Final

import attrs

from deneva.errors import DenevaError

__all__ = [
    "DATE_RANGES",
    "PLATFORMS",
    "REPORT_SCHEMAS",
    "REPORT_TYPES",
    "UNSUPPORTED",
    "CatalogError",
    "Window",
    "check_report",
    "fetch_days",
    "fetch_window",
    "platform_problem",
    "range_window",
    "report_problem",
]

PLATFORMS: Final = ("google", "meta", "tiktok")
DATE_RANGES: Final[Mapping[str, int]] = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90}

REPORT_SCHEMAS: Final[Mapping[str, str]] = {
    "account_health": "campaign_day",
    "budget_optimizer": "campaign_day",
    "weekly_anomaly": "campaign_day",
    "search_term_waste": "search_term",
    "quality_score": "keyword",
    "auction_insights": "auction",
    "pmax_breakdown": "asset_group",
}
_CAMPAIGN_REPORTS = ("account_health", "budget_optimizer", "weekly_anomaly")
REPORT_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "google": (
        *_CAMPAIGN_REPORTS,
        "search_term_waste",
        "quality_score",
        "auction_insights",
        "pmax_breakdown",
    ),
    "meta": _CAMPAIGN_REPORTS,
    "tiktok": _CAMPAIGN_REPORTS,
}
# Report types of seed 000 that a platform's API cannot answer, and why.
UNSUPPORTED: Final[Mapping[tuple[str, str], str]] = {
    ("meta", "search_term_waste"): "the Meta API has no search terms (a Google report)",
    ("meta", "auction_insights"): "the Meta API has no auction insights (a Google report)",
    ("tiktok", "search_term_waste"): "the TikTok API has no search terms (a Google report)",
    ("tiktok", "auction_insights"): "the TikTok API has no auction insights (a Google report)",
}

# Week over week compares the last 7 days with the 7 before, whatever the range.
WEEK_OVER_WEEK_DAYS: Final = 14
# The weekly anomaly's band: the last 7 days against the 4 weeks before them.
ANOMALY_WEEK_DAYS: Final = 7
ANOMALY_BASELINE_WEEKS: Final = 4


class CatalogError(DenevaError, ValueError):
    """A platform, report type or date range deneva does not serve; the message says which."""


@attrs.frozen
class Window:
    """Inclusive whole days [start, end]."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _listing(values: tuple[str, ...] | Mapping[str, object]) -> str:
    return ", ".join(values)


def platform_problem(platform: str) -> str | None:
    """Why `platform` is not served, or None."""
    if platform in PLATFORMS:
        return None
    return f"unknown platform {platform!r}; one of {_listing(PLATFORMS)}"


def report_type_problem(platform: str, report_type: str) -> str | None:
    """Why `platform` does not serve `report_type` (or is unknown), or None."""
    problem = platform_problem(platform)
    if problem is not None:
        return problem
    if report_type in REPORT_TYPES[platform]:
        return None
    reason = UNSUPPORTED.get((platform, report_type))
    if reason is None and report_type in REPORT_SCHEMAS:
        reason = f"{platform} serves {_listing(REPORT_TYPES[platform])}"
    if reason is None:
        reason = f"report types are {_listing(REPORT_SCHEMAS)}"
    return f"{platform} has no report type {report_type!r}: {reason}"


def date_range_problem(date_range: str) -> str | None:
    if date_range in DATE_RANGES:
        return None
    return f"unknown date range {date_range!r}; one of {_listing(DATE_RANGES)}"


def report_problem(platform: str, report_type: str, date_range: str) -> str | None:
    """Why deneva cannot serve `report_type` of `platform` over `date_range`, or None."""
    return report_type_problem(platform, report_type) or date_range_problem(date_range)


def check_report(platform: str, report_type: str, date_range: str) -> None:
    """CatalogError unless `platform` serves `report_type` over `date_range`."""
    problem = report_problem(platform, report_type, date_range)
    if problem is not None:
        raise CatalogError(problem)


def range_days(date_range: str) -> int:
    days = DATE_RANGES.get(date_range)
    if days is None:
        raise CatalogError(date_range_problem(date_range) or date_range)
    return days


def range_window(date_range: str, today: date) -> Window:
    """The named range itself: the N whole days before `today`."""
    days = range_days(date_range)
    return Window(today - timedelta(days=days), today - timedelta(days=1))


def fetch_days(report_type: str, date_range: str) -> int:
    """How many days, ending yesterday, the report fetches for `date_range`: the range and
    the history its comparison needs before it."""
    days = range_days(date_range)
    if report_type == "account_health":
        return max(2 * days, WEEK_OVER_WEEK_DAYS)
    if report_type == "weekly_anomaly":
        return max(days, ANOMALY_WEEK_DAYS * (1 + ANOMALY_BASELINE_WEEKS))
    if report_type in REPORT_SCHEMAS:
        return days
    raise CatalogError(f"report types are {_listing(REPORT_SCHEMAS)}, not {report_type!r}")


def fetch_window(report_type: str, date_range: str, today: date) -> Window:
    """The days the platform is asked for: `fetch_days` whole days ending yesterday."""
    days = fetch_days(report_type, date_range)
    return Window(today - timedelta(days=days), today - timedelta(days=1))
