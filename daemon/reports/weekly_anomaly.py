"""Weekly anomaly: the last 7 days' metrics against a band drawn from the weeks before.

Windows end yesterday: the last 7 days are the 7 days before `today`, the
baseline the `band.weeks` weeks before those. Series are the account and each
campaign holding at least `min_campaign_share` of account spend; metrics are
spend, clicks, conversions and CPA (a day or week with fewer than 3 conversions
has no CPA: it is neither checked nor part of the CPA band). A day missing for a
series after its first row counts as zero (platforms omit rows without
delivery); before its first row it is unknown, so a campaign younger than its
baseline has a shorter one.

Two checks per series and metric:

- **day**: each of the last 7 days against the same weekday in the baseline weeks
  (`band.by_weekday`, the default: ads follow the week) or against every baseline day;
- **week**: the last 7 days' total against each baseline week's total.

The band is median +- k x 1.4826 x MAD (`band.method="mad"`, robust to one odd day)
or mean +- k x sample std (`"std"`), widened to at least `min_relative_width` of the
centre, and for clicks and conversions to at least k x sqrt(centre) (count noise).
A series with fewer than `band.min_points` baseline values is skipped and counted.
Days outside the band are grouped per series, metric and direction.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, timedelta

import attrs

from deneva.reports._common import (
    MAX_ITEMS,
    JSONDict,
    Totals,
    clip,
    fmt_money,
    fmt_pct,
    fmt_qty,
    money,
    pct_change,
    period_json,
    qty,
    ratio,
)
from deneva.reports.inputs import CampaignDay, ReportInputError

__all__ = ["METRICS", "Anomaly", "Band", "WeeklyAnomaly", "weekly_anomaly"]

METRICS = ("spend", "clicks", "conversions", "cpa")
MIN_CPA_CONVERSIONS = 3.0
_MAD_SCALE = 1.4826  # makes the MAD estimate a normal distribution's std
_MIN_ABS_WIDTH = {"spend": 1.0, "clicks": 1.0, "conversions": 1.0, "cpa": 1.0}
_COUNT_METRICS = frozenset({"clicks", "conversions"})
# Whether a move up is good for the advertiser (None: neither).
_UP_IS_GOOD: dict[str, bool | None] = {"spend": None, "clicks": True, "conversions": True, "cpa": False}
_MONEY_METRICS = frozenset({"spend", "cpa"})


def _metric(totals: Totals, metric: str) -> float | None:
    if metric == "spend":
        return totals.cost
    if metric == "clicks":
        return float(totals.clicks)
    if metric == "conversions":
        return totals.conversions
    # A CPA from a handful of conversions is noise, not a signal.
    return totals.cpa if totals.conversions >= MIN_CPA_CONVERSIONS else None


def _round(metric: str, value: float) -> float:
    return money(value) if metric in _MONEY_METRICS else qty(value)


@attrs.frozen
class Band:
    """How the trailing band is drawn."""

    method: str = "mad"  # "mad" | "std"
    k: float = 3.0
    weeks: int = 4
    by_weekday: bool = True
    min_points: int = 3
    min_relative_width: float = 0.2

    def __attrs_post_init__(self) -> None:
        if self.method not in ("mad", "std"):
            raise ReportInputError(f"must be 'mad' or 'std', got {self.method!r}", field="band.method")
        if isinstance(self.k, bool) or not isinstance(self.k, int | float) or not 0 < self.k <= 100:
            raise ReportInputError(f"must be a number in (0, 100], got {self.k!r}", field="band.k")
        if isinstance(self.weeks, bool) or not isinstance(self.weeks, int) or not 1 <= self.weeks <= 26:
            raise ReportInputError(f"must be an integer in 1..26, got {self.weeks!r}", field="band.weeks")
        if isinstance(self.min_points, bool) or not isinstance(self.min_points, int) or self.min_points < 2:
            raise ReportInputError(
                f"must be an integer >= 2, got {self.min_points!r}", field="band.min_points"
            )
        width = self.min_relative_width
        if isinstance(width, bool) or not isinstance(width, int | float) or not 0 <= width <= 10:
            raise ReportInputError(
                f"must be a number in [0, 10], got {width!r}", field="band.min_relative_width"
            )

    def describe(self) -> str:
        spread = "MAD" if self.method == "mad" else "std"
        centre = "median" if self.method == "mad" else "mean"
        unit = "same weekday" if self.by_weekday else "daily"
        return f"{self.weeks}-week {unit} {centre} +- {self.k:g} {spread}"

    def limits(self, metric: str, values: Sequence[float]) -> tuple[float, float]:
        """(centre, half width) of the band around `values`."""
        if self.method == "mad":
            centre = statistics.median(values)
            spread = _MAD_SCALE * statistics.median(abs(v - centre) for v in values)
        else:
            centre = statistics.fmean(values)
            spread = statistics.stdev(values)
        half = max(self.k * spread, self.min_relative_width * abs(centre), _MIN_ABS_WIDTH[metric])
        if metric in _COUNT_METRICS:
            half = max(half, self.k * math.sqrt(max(centre, 1.0)))
        return centre, half


@attrs.frozen
class Outlier:
    """One value outside its band."""

    day: date | None  # None for the weekly check
    value: float
    centre: float
    half: float

    @property
    def multiples(self) -> float:
        """How far outside the centre, in band half-widths (> 1 outside the band)."""
        return abs(self.value - self.centre) / self.half


@attrs.frozen
class Anomaly:
    """A series' metric outside its band: one week, or one or more days in one direction."""

    campaign_id: str | None  # None for the account
    campaign_name: str | None
    metric: str
    granularity: str  # "day" | "week"
    direction: str  # "up" | "down"
    outliers: tuple[Outlier, ...]  # the worst first

    @property
    def worst(self) -> Outlier:
        return self.outliers[0]

    @property
    def impact(self) -> str:
        up_good = _UP_IS_GOOD[self.metric]
        if up_good is None:
            return "neutral"
        return "good" if up_good == (self.direction == "up") else "bad"

    @property
    def label(self) -> str:
        return "account" if self.campaign_id is None else f"campaign {clip(self.campaign_name or '', 40)!r}"

    def describe(self) -> str:
        w = self.worst
        fmt: Callable[[float], str] = fmt_money if self.metric in _MONEY_METRICS else fmt_qty
        when = (
            "over the last 7 days"
            if self.granularity == "week"
            else f"on {len(self.outliers)} day(s), worst {w.day}"
            if len(self.outliers) > 1
            else f"on {w.day}"
        )
        return (
            f"{self.label} {self.metric} {self.direction} {when}: {fmt(w.value)} vs expected {fmt(w.centre)}"
            f" ({fmt_pct(pct_change(w.value, w.centre))})"
        )

    def to_json(self) -> JSONDict:
        w = self.worst
        out: JSONDict = {"scope": "account" if self.campaign_id is None else "campaign"}
        if self.campaign_id is not None:
            out["campaign_id"] = self.campaign_id
            out["campaign_name"] = clip(self.campaign_name or "", 60)
        out.update(
            metric=self.metric, granularity=self.granularity, direction=self.direction, impact=self.impact
        )
        if self.granularity == "day":
            out["days_outside"] = len(self.outliers)
            out["dates"] = sorted(o.day.isoformat() for o in self.outliers if o.day is not None)
            out["worst_date"] = None if w.day is None else w.day.isoformat()
        out.update(
            value=_round(self.metric, w.value),
            expected=_round(self.metric, w.centre),
            low=_round(self.metric, max(0.0, w.centre - w.half)),
            high=_round(self.metric, w.centre + w.half),
            deviation_pct=pct_change(w.value, w.centre),
            band_multiples=ratio(min(w.multiples, 1e6)),
        )
        return out


@attrs.frozen
class AccountWeek:
    """The account's last-7-days total of one metric against its weekly band."""

    metric: str
    value: float | None
    centre: float | None
    half: float | None

    @property
    def status(self) -> str:
        if self.value is None:
            return "no_value"
        if self.centre is None or self.half is None:
            return "insufficient_history"
        if self.value > self.centre + self.half:
            return "above"
        if self.value < self.centre - self.half:
            return "below"
        return "within"

    def to_json(self) -> JSONDict:
        def r(v: float | None) -> float | None:
            return None if v is None else _round(self.metric, v)

        low = None if self.centre is None or self.half is None else max(0.0, self.centre - self.half)
        high = None if self.centre is None or self.half is None else self.centre + self.half
        return {
            "metric": self.metric,
            "value": r(self.value),
            "expected": r(self.centre),
            "low": r(low),
            "high": r(high),
            "status": self.status,
            "deviation_pct": pct_change(self.value, self.centre),
        }


@attrs.frozen
class WeeklyAnomaly:
    """The result of `weekly_anomaly`."""

    window_start: date
    window_end: date
    baseline_start: date
    baseline_end: date
    band: Band
    has_data: bool
    account_week: tuple[AccountWeek, ...]
    anomalies: tuple[Anomaly, ...]  # all, ranked
    series_checked: int
    series_insufficient: int
    campaigns_skipped_small: int
    new_campaigns: tuple[tuple[str, str, float], ...]  # (id, name, cost in the last 7 days)
    history_start: date | None = None  # the account's earliest row (None: no rows)

    @property
    def baseline_coverage(self) -> str:
        """How much of the baseline the account's history covers: complete, partial or none."""
        if self.history_start is None or self.history_start > self.baseline_end:
            return "none"
        return "complete" if self.history_start <= self.baseline_start else "partial"

    def summary(self) -> str:
        window = f"{self.window_start} to {self.window_end}"
        if not self.has_data:
            return f"No data for this period ({window})."
        if not self.series_checked:
            since = "" if self.history_start is None else f" (the account's data starts {self.history_start})"
            return (
                f"Not enough history before {self.window_start} to draw a band "
                f"({self.band.describe()}){since}."
            )
        if not self.anomalies:
            text = f"No metric outside its band in the last 7 days ({window}, {self.band.describe()})."
        else:
            n = len(self.anomalies)
            top = "; ".join(a.describe() for a in self.anomalies[:3])
            text = f"{n} anomal{'ies' if n != 1 else 'y'} in the last 7 days ({window}): {top}."
        if self.new_campaigns:
            text += f" {len(self.new_campaigns)} new campaign(s) without history."
        return text

    def to_json(self) -> JSONDict:
        counts: dict[str, int] = defaultdict(int)
        for a in self.anomalies:
            counts[a.metric] += 1
        return {
            "report": "weekly_anomaly",
            "has_data": self.has_data,
            "summary": self.summary(),
            "window": period_json(self.window_start, self.window_end),
            "baseline": {
                **period_json(self.baseline_start, self.baseline_end),
                "method": self.band.method,
                "k": self.band.k,
                "by_weekday": self.band.by_weekday,
                "description": self.band.describe(),
                "coverage": self.baseline_coverage,
            },
            "history_start": None if self.history_start is None else self.history_start.isoformat(),
            "account_week": [w.to_json() for w in self.account_week],
            "anomalies": [a.to_json() for a in self.anomalies[:MAX_ITEMS]],
            "anomaly_count": len(self.anomalies),
            "anomalies_by_metric": {m: counts[m] for m in METRICS},
            "anomalies_up": sum(1 for a in self.anomalies if a.direction == "up"),
            "anomalies_down": sum(1 for a in self.anomalies if a.direction == "down"),
            "series_checked": self.series_checked,
            "series_insufficient_history": self.series_insufficient,
            "campaigns_skipped_small": self.campaigns_skipped_small,
            "new_campaigns": [
                {"campaign_id": cid, "campaign_name": clip(name, 60), "cost": money(cost)}
                for cid, name, cost in self.new_campaigns[:10]
            ],
        }


class _Series:
    """Daily totals of one scope from its first row on (missing days are zeros)."""

    def __init__(self, first: date, by_day: dict[date, Totals]) -> None:
        self.first = first
        self.by_day = by_day

    def day(self, d: date) -> Totals | None:
        if d < self.first:
            return None
        return self.by_day.get(d, Totals())

    def span(self, start: date, days: int) -> Totals | None:
        """The total of `days` days from `start`, or None if any falls before the first row."""
        if start < self.first:
            return None
        total = Totals()
        for i in range(days):
            total = total + self.by_day.get(start + timedelta(days=i), Totals())
        return total


def _check(
    series: _Series,
    band: Band,
    window: list[date],
    campaign: tuple[str, str] | None,
) -> tuple[list[Anomaly], bool]:
    """Anomalies of one series, and whether it had enough history for any check."""
    cid, name = campaign if campaign is not None else (None, None)
    baseline_days = [window[0] - timedelta(days=i) for i in range(band.weeks * 7, 0, -1)]
    found: list[Anomaly] = []
    enough = False
    for metric in METRICS:
        # Daily check.
        outliers: dict[str, list[Outlier]] = defaultdict(list)
        for d in window:
            today_totals = series.day(d)
            if today_totals is None:
                continue
            value = _metric(today_totals, metric)
            if value is None:
                continue
            if band.by_weekday:
                history = [series.day(d - timedelta(days=7 * j)) for j in range(1, band.weeks + 1)]
            else:
                history = [series.day(b) for b in baseline_days]
            values = [v for t in history if t is not None for v in [_metric(t, metric)] if v is not None]
            if len(values) < band.min_points:
                continue
            enough = True
            centre, half = band.limits(metric, values)
            if abs(value - centre) > half:
                outliers["up" if value > centre else "down"].append(Outlier(d, value, centre, half))
        for direction, items in sorted(outliers.items()):
            items.sort(key=lambda o: (-o.multiples, o.day))
            found.append(Anomaly(cid, name, metric, "day", direction, tuple(items)))
        # Weekly check.
        week = _week(series, band, window[0], metric)
        if week is not None:
            enough = True
            value, centre, half = week
            if abs(value - centre) > half:
                direction = "up" if value > centre else "down"
                found.append(
                    Anomaly(cid, name, metric, "week", direction, (Outlier(None, value, centre, half),))
                )
    return found, enough


def _week(series: _Series, band: Band, start: date, metric: str) -> tuple[float, float, float] | None:
    """(last week's value, centre, half width), or None without enough full baseline weeks."""
    last = series.span(start, 7)
    value = None if last is None else _metric(last, metric)
    if value is None:
        return None
    weeks = [series.span(start - timedelta(days=7 * j), 7) for j in range(1, band.weeks + 1)]
    values = [v for t in weeks if t is not None for v in [_metric(t, metric)] if v is not None]
    if len(values) < band.min_points:
        return None
    centre, half = band.limits(metric, values)
    return value, centre, half


def weekly_anomaly(
    days: Sequence[CampaignDay],
    today: date,
    band: Band | None = None,
    *,
    min_campaign_share: float = 0.02,
) -> WeeklyAnomaly:
    """Metrics of the 7 days before `today` outside their trailing band, per campaign and account-wide."""
    band = band if band is not None else Band()
    if isinstance(min_campaign_share, bool) or not isinstance(min_campaign_share, int | float):
        raise ReportInputError("must be a number in [0, 1]", field="min_campaign_share")
    if not 0 <= min_campaign_share <= 1:
        raise ReportInputError(f"must be in [0, 1], got {min_campaign_share}", field="min_campaign_share")
    window = [today - timedelta(days=i) for i in range(7, 0, -1)]
    baseline_start = window[0] - timedelta(days=7 * band.weeks)
    rows = [r for r in days if baseline_start <= r.date < today]

    account_days: dict[date, Totals] = defaultdict(Totals)
    campaign_days: dict[str, dict[date, Totals]] = defaultdict(lambda: defaultdict(Totals))
    first: dict[str, date] = {}
    names: dict[str, tuple[date, str]] = {}
    for r in rows:
        t = Totals.of([r])
        account_days[r.date] = account_days[r.date] + t
        campaign_days[r.campaign_id][r.date] = campaign_days[r.campaign_id][r.date] + t
        first[r.campaign_id] = min(first.get(r.campaign_id, r.date), r.date)
        if r.campaign_id not in names or r.date >= names[r.campaign_id][0]:
            names[r.campaign_id] = (r.date, r.campaign_name)

    # The account's history starts with its first row in the data given, not with the baseline.
    account_first = max(min((r.date for r in days), default=today), baseline_start)
    account = _Series(account_first, dict(account_days))
    anomalies, enough = _check(account, band, window, None)
    checked = int(enough)
    insufficient = int(not enough) if rows else 0

    last_week = sum((account_days.get(d, Totals()) for d in window), Totals())
    account_week = []
    for metric in METRICS:
        week = _week(account, band, window[0], metric)
        centre, half = (None, None) if week is None else week[1:]
        account_week.append(AccountWeek(metric, _metric(last_week, metric), centre, half))

    total_cost = sum(t.cost for t in account_days.values())
    small = 0
    new: list[tuple[str, str, float]] = []
    campaign_anomalies: list[Anomaly] = []
    for cid in sorted(campaign_days):
        by_day = campaign_days[cid]
        cost = sum(t.cost for t in by_day.values())
        name = names[cid][1]
        if first[cid] >= window[0]:
            new.append((cid, name, cost))
            continue
        if (total_cost > 0 and cost / total_cost < min_campaign_share) or cost == 0:
            small += 1
            continue
        found, enough = _check(_Series(first[cid], dict(by_day)), band, window, (cid, name))
        campaign_anomalies.extend(found)
        checked += int(enough)
        insufficient += int(not enough)
    anomalies.sort(key=lambda a: -a.worst.multiples)
    campaign_anomalies.sort(key=lambda a: (-a.worst.multiples, a.campaign_id or "", a.metric))
    new.sort(key=lambda x: (-x[2], x[0]))

    return WeeklyAnomaly(
        window_start=window[0],
        window_end=window[-1],
        baseline_start=baseline_start,
        baseline_end=window[0] - timedelta(days=1),
        band=band,
        has_data=bool(rows),
        account_week=tuple(account_week),
        anomalies=tuple(anomalies + campaign_anomalies),
        series_checked=checked,
        series_insufficient=insufficient,
        campaigns_skipped_small=small,
        new_campaigns=tuple(new),
        history_start=min((r.date for r in days if r.date < today), default=None),
    )
