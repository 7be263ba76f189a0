"""Calendar arithmetic for the platforms' named date ranges. Pure: `today` is always passed in."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import attrs

# Synthetic accounts have daily data for the HISTORY_DAYS full days before `today`.
HISTORY_DAYS = 120


@attrs.frozen
class DateRange:
    """Inclusive on both ends, like every platform's reporting API."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __iter__(self) -> Iterator[date]:
        day = self.start
        while day <= self.end:
            yield day
            day += timedelta(days=1)

    def intersect(self, other: DateRange) -> DateRange | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return DateRange(start, end) if start <= end else None


def history(today: date) -> DateRange:
    """The days a synthetic account has data for: the HISTORY_DAYS before `today`."""
    return DateRange(today - timedelta(days=HISTORY_DAYS), today - timedelta(days=1))


def parse_iso_date(text: str) -> date | None:
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _last_days(today: date, n: int) -> DateRange:
    return DateRange(today - timedelta(days=n), today - timedelta(days=1))


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _last_month(today: date) -> DateRange:
    end = _month_start(today) - timedelta(days=1)
    return DateRange(_month_start(end), end)


def _week_start(day: date, first_weekday: int) -> date:
    """The most recent `first_weekday` (0 = Monday, 6 = Sunday) on or before `day`."""
    return day - timedelta(days=(day.weekday() - first_weekday) % 7)


def _quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def google_during(constant: str, today: date) -> DateRange | None:
    """A GAQL `segments.date DURING <constant>`; None for an unknown constant."""
    match constant:
        case "TODAY":
            return DateRange(today, today)
        case "YESTERDAY":
            return _last_days(today, 1)
        case "LAST_7_DAYS":
            return _last_days(today, 7)
        case "LAST_14_DAYS":
            return _last_days(today, 14)
        case "LAST_30_DAYS":
            return _last_days(today, 30)
        case "THIS_MONTH":
            return DateRange(_month_start(today), today)
        case "LAST_MONTH":
            return _last_month(today)
        case "THIS_WEEK_MON_TODAY":
            return DateRange(_week_start(today, 0), today)
        case "THIS_WEEK_SUN_TODAY":
            return DateRange(_week_start(today, 6), today)
        case "LAST_WEEK_MON_SUN":
            start = _week_start(today, 0) - timedelta(days=7)
            return DateRange(start, start + timedelta(days=6))
        case "LAST_WEEK_SUN_SAT":
            start = _week_start(today, 6) - timedelta(days=7)
            return DateRange(start, start + timedelta(days=6))
        case "LAST_BUSINESS_WEEK":
            start = _week_start(today, 0) - timedelta(days=7)
            return DateRange(start, start + timedelta(days=4))
    return None


GOOGLE_DURING_CONSTANTS = (
    "TODAY",
    "YESTERDAY",
    "LAST_7_DAYS",
    "LAST_14_DAYS",
    "LAST_30_DAYS",
    "THIS_MONTH",
    "LAST_MONTH",
    "THIS_WEEK_MON_TODAY",
    "THIS_WEEK_SUN_TODAY",
    "LAST_WEEK_MON_SUN",
    "LAST_WEEK_SUN_SAT",
    "LAST_BUSINESS_WEEK",
)


META_DATE_PRESETS = (
    "today",
    "yesterday",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
    "this_week_mon_today",
    "this_week_sun_today",
    "last_week_mon_sun",
    "last_week_sun_sat",
    "last_3d",
    "last_7d",
    "last_14d",
    "last_28d",
    "last_30d",
    "last_90d",
    "maximum",
    "data_maximum",
)


def meta_preset(preset: str, today: date) -> DateRange | None:
    """A Graph API `date_preset`; None for an unknown preset."""
    if preset.startswith("last_") and preset.endswith("d") and preset[5:-1].isdigit():
        n = int(preset[5:-1])
        return _last_days(today, n) if preset in META_DATE_PRESETS else None
    match preset:
        case "today":
            return DateRange(today, today)
        case "yesterday":
            return _last_days(today, 1)
        case "this_month":
            return DateRange(_month_start(today), today)
        case "last_month":
            return _last_month(today)
        case "this_quarter":
            return DateRange(_quarter_start(today), today)
        case "last_quarter":
            end = _quarter_start(today) - timedelta(days=1)
            return DateRange(_quarter_start(end), end)
        case "this_year":
            return DateRange(date(today.year, 1, 1), today)
        case "last_year":
            return DateRange(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))
        case "this_week_mon_today":
            return DateRange(_week_start(today, 0), today)
        case "this_week_sun_today":
            return DateRange(_week_start(today, 6), today)
        case "last_week_mon_sun":
            start = _week_start(today, 0) - timedelta(days=7)
            return DateRange(start, start + timedelta(days=6))
        case "last_week_sun_sat":
            start = _week_start(today, 6) - timedelta(days=7)
            return DateRange(start, start + timedelta(days=6))
        case "maximum" | "data_maximum":
            # Graph allows 37 months back; the synthetic history is shorter anyway.
            return DateRange(today - timedelta(days=37 * 30), today)
    return None
