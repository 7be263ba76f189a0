"""Account health: period totals against the previous period, week-over-week deltas, top movers, flags.

Windows end yesterday: the period is the `range_days` days before `today`
(`today` itself, a partial day, is left out), the previous period the
`range_days` days before that. Week over week compares the 7 days before `today`
with the 7 days before those, whatever `range_days` is. The rows given must reach back
over both (`deneva.catalog.fetch_window`: max(2 x range, 14) days).

Honest gaps: the account's history starts with its earliest row (platforms omit days
without delivery, so a day after it without rows counts as zero). A comparison whose
earlier side starts before that history is not made: its changes are None and a flag
says why (`no_previous_period` / `previous_period_partial`, `partial_week`), rather
than comparing a full period with a partial one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
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
    money_or_none,
    pct_change,
    period_json,
    qty,
    ratio_or_none,
)
from deneva.reports.inputs import CampaignDay, ReportInputError

__all__ = ["AccountHealth", "CampaignMove", "Flag", "account_health"]

MAX_RANGE_DAYS = 366
TOP_MOVERS = 10

# Flag thresholds (week over week, in percent).
SPEND_UP_PCT = 10.0
CONVERSIONS_DOWN_PCT = -10.0
CPA_UP_PCT = 25.0
ROAS_DOWN_PCT = -25.0
CTR_DOWN_PCT = -20.0
# Conversion and CPA flags need at least this many conversions in the weeks compared (else: noise).
MIN_CONVERSIONS = 3.0
# A campaign is flagged only if it carried at least this share of account spend in either week.
CAMPAIGN_FLAG_MIN_SHARE = 0.05

_SEVERITY_ORDER = {"high": 0, "medium": 1, "info": 2}
_NO_CHANGE: dict[str, float | None] = dict.fromkeys(("spend", "clicks", "conversions", "cpa", "roas", "ctr"))


@attrs.frozen
class Window:
    start: date
    end: date

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end

    def to_json(self) -> JSONDict:
        return period_json(self.start, self.end)


def _window(today: date, days: int, offset: int = 0) -> Window:
    end = today - timedelta(days=1 + offset)
    return Window(end - timedelta(days=days - 1), end)


def _change(new: Totals, old: Totals) -> dict[str, float | None]:
    return {
        "spend": pct_change(new.cost, old.cost),
        "clicks": pct_change(new.clicks, old.clicks),
        "conversions": pct_change(new.conversions, old.conversions),
        "cpa": pct_change(new.cpa, old.cpa),
        "roas": pct_change(new.roas, old.roas),
        "ctr": pct_change(new.ctr, old.ctr),
    }


@attrs.frozen
class Flag:
    """Something an LLM should point out: `code` is stable, `message` is for people."""

    severity: str  # "high" | "medium" | "info"
    code: str
    message: str
    impact: float  # money at stake, for ranking
    campaign_id: str | None = None
    campaign_name: str | None = None

    def to_json(self) -> JSONDict:
        out: JSONDict = {"severity": self.severity, "code": self.code, "message": self.message}
        if self.campaign_id is not None:
            out["scope"] = "campaign"
            out["campaign_id"] = self.campaign_id
            out["campaign_name"] = clip(self.campaign_name or "")
        else:
            out["scope"] = "account"
        return out


def _flags(
    last: Totals,
    prior: Totals,
    *,
    label: str,
    campaign_id: str | None = None,
    campaign_name: str | None = None,
) -> list[Flag]:
    """Week-over-week flags for one scope (the account or one campaign)."""
    change = _change(last, prior)
    spend, conv, cpa, roas, ctr = (change[k] for k in ("spend", "conversions", "cpa", "roas", "ctr"))
    flags: list[Flag] = []

    def add(severity: str, code: str, message: str, impact: float) -> None:
        flags.append(Flag(severity, code, message, impact, campaign_id, campaign_name))

    if prior.cost > 0 and last.cost == 0:
        add(
            "high",
            "spend_stopped",
            f"{label} spent nothing in the last 7 days (prior week {fmt_money(prior.cost)})",
            prior.cost,
        )
        return flags
    if prior.conversions >= MIN_CONVERSIONS and last.conversions == 0 and last.cost > 0:
        message = (
            f"{label} had no conversions in the last 7 days while spending {fmt_money(last.cost)} "
            f"(prior week {fmt_qty(prior.conversions)})"
        )
        add("high", "conversions_stopped", message, last.cost)
    elif (
        spend is not None
        and conv is not None
        and prior.conversions >= MIN_CONVERSIONS
        and spend >= SPEND_UP_PCT
        and conv <= CONVERSIONS_DOWN_PCT
    ):
        message = f"{label}: spend {fmt_pct(spend)} while conversions {fmt_pct(conv)} week over week"
        add("high", "spend_up_conversions_down", message, last.cost - prior.cost)
    elif (
        cpa is not None and cpa >= CPA_UP_PCT and min(last.conversions, prior.conversions) >= MIN_CONVERSIONS
    ):
        message = (
            f"{label}: CPA {fmt_money(last.cpa)} vs {fmt_money(prior.cpa)} ({fmt_pct(cpa)}) week over week"
        )
        add("medium", "cpa_up", message, last.cost * cpa / 100)
    if roas is not None and roas <= ROAS_DOWN_PCT:
        message = (
            f"{label}: ROAS {last.roas or 0:.2f} vs {prior.roas or 0:.2f} ({fmt_pct(roas)}) week over week"
        )
        add("medium", "roas_down", message, last.cost * -roas / 100)
    if ctr is not None and ctr <= CTR_DOWN_PCT:
        add("info", "ctr_down", f"{label}: CTR {fmt_pct(ctr)} week over week", last.cost * -ctr / 100)
    return flags


@attrs.frozen
class CampaignMove:
    """One campaign's last 7 days against the 7 before."""

    campaign_id: str
    campaign_name: str
    status: str
    last: Totals
    prior: Totals
    score: float  # |spend change| + |conversion change| valued at the account's prior CPA

    def to_json(self) -> JSONDict:
        change = _change(self.last, self.prior)
        return {
            "campaign_id": self.campaign_id,
            "campaign_name": clip(self.campaign_name),
            "status": clip(self.status, 24),
            "cost": money(self.last.cost),
            "cost_prior": money(self.prior.cost),
            "cost_change_pct": change["spend"],
            "conversions": qty(self.last.conversions),
            "conversions_prior": qty(self.prior.conversions),
            "conversions_change_pct": change["conversions"],
            "cpa": money_or_none(self.last.cpa),
            "cpa_prior": money_or_none(self.prior.cpa),
            "roas": ratio_or_none(self.last.roas),
            "roas_prior": ratio_or_none(self.prior.roas),
        }


@attrs.frozen
class AccountHealth:
    """The result of `account_health`."""

    period: Window
    previous_period: Window
    last_week: Window
    prior_week: Window
    totals: Totals
    previous_totals: Totals
    last_week_totals: Totals
    prior_week_totals: Totals
    campaign_count: int
    movers: tuple[CampaignMove, ...]
    flags: tuple[Flag, ...]
    flags_total: int
    days_with_data_last_week: int
    days_with_data_prior_week: int
    history_start: date | None = None

    @property
    def has_data(self) -> bool:
        return not (self.totals.empty and self.previous_totals.empty)

    def _coverage(self, window: Window) -> str:
        """How much of `window` the account's history covers: complete, partial or none."""
        if self.history_start is None or self.history_start > window.end:
            return "none"
        return "complete" if self.history_start <= window.start else "partial"

    @property
    def previous_comparable(self) -> bool:
        return self._coverage(self.previous_period) == "complete"

    @property
    def week_comparable(self) -> bool:
        return self._coverage(self.prior_week) == "complete"

    @property
    def period_change(self) -> dict[str, float | None]:
        if not self.previous_comparable:
            return dict(_NO_CHANGE)
        return _change(self.totals, self.previous_totals)

    @property
    def week_change(self) -> dict[str, float | None]:
        if not self.week_comparable:
            return dict(_NO_CHANGE)
        return _change(self.last_week_totals, self.prior_week_totals)

    def summary(self) -> str:
        days = (self.period.end - self.period.start).days + 1
        if not self.has_data:
            return f"No data for this period ({self.period.start} to {self.period.end}) or the one before."
        t = self.totals
        change = self.period_change
        wow = self.week_change
        roas = f", ROAS {t.roas:.2f}" if t.roas else ""
        if self.previous_comparable:
            text = (
                f"Last {days} days: spend {fmt_money(t.cost)} "
                f"({fmt_pct(change['spend'])} vs previous {days} days), "
                f"{fmt_qty(t.conversions)} conversions ({fmt_pct(change['conversions'])}), "
                f"CPA {fmt_money(t.cpa)} ({fmt_pct(change['cpa'])}){roas}. "
            )
        else:
            text = (
                f"Last {days} days: spend {fmt_money(t.cost)}, {fmt_qty(t.conversions)} conversions, "
                f"CPA {fmt_money(t.cpa)}{roas} (no comparison with the previous {days} days: "
                f"{self._history_words()}). "
            )
        if self.week_comparable:
            text += (
                f"Week over week: spend {fmt_pct(wow['spend'])}, conversions {fmt_pct(wow['conversions'])}, "
                f"CPA {fmt_pct(wow['cpa'])}."
            )
        else:
            text += f"No week-over-week comparison: {self._history_words()}."
        if self.flags:
            top = "; ".join(f.message for f in self.flags[:2])
            text += f" {self.flags_total} flag{'s' if self.flags_total != 1 else ''}: {top}."
        else:
            text += " No flags."
        return text

    def _history_words(self) -> str:
        if self.history_start is None:
            return "the account has no data"
        return f"the account's data starts {self.history_start}"

    def to_json(self) -> JSONDict:
        return {
            "report": "account_health",
            "has_data": self.has_data,
            "summary": self.summary(),
            "period": self.period.to_json(),
            "previous_period": {
                **self.previous_period.to_json(),
                "coverage": self._coverage(self.previous_period),
            },
            "history_start": None if self.history_start is None else self.history_start.isoformat(),
            "totals": self.totals.to_json(),
            "previous_totals": self.previous_totals.to_json(),
            "period_change_pct": self.period_change,
            "week_over_week": {
                "last_7_days": {
                    **self.last_week.to_json(),
                    "days_with_data": self.days_with_data_last_week,
                    "totals": self.last_week_totals.to_json(),
                },
                "prior_7_days": {
                    **self.prior_week.to_json(),
                    "days_with_data": self.days_with_data_prior_week,
                    "coverage": self._coverage(self.prior_week),
                    "totals": self.prior_week_totals.to_json(),
                },
                "change_pct": self.week_change,
            },
            "campaign_count": self.campaign_count,
            "top_movers": [m.to_json() for m in self.movers],
            "flags": [f.to_json() for f in self.flags],
            "flags_total": self.flags_total,
        }


def account_health(days: Sequence[CampaignDay], today: date, range_days: int) -> AccountHealth:
    """Account health over the `range_days` days before `today`, with week-over-week deltas.

    Flags (week over week, ranked by severity then money at stake): `spend_stopped`,
    `conversions_stopped`, `spend_up_conversions_down` (spend >= +10 % while
    conversions <= -10 %), `cpa_up` (>= +25 %), `roas_down` (<= -25 %), `ctr_down`
    (<= -20 %), and `partial_week` when a week has days without data. Conversion
    and CPA flags need >= 3 conversions in the weeks compared; campaign flags need
    the campaign to hold >= 5 % of account spend in either week.
    """
    if (
        isinstance(range_days, bool)
        or not isinstance(range_days, int)
        or not 1 <= range_days <= MAX_RANGE_DAYS
    ):
        raise ReportInputError(f"must be an integer between 1 and {MAX_RANGE_DAYS}", field="range_days")
    period = _window(today, range_days)
    previous = _window(today, range_days, offset=range_days)
    last_week = _window(today, 7)
    prior_week = _window(today, 7, offset=7)

    in_period: list[CampaignDay] = []
    in_previous: list[CampaignDay] = []
    last_by_campaign: dict[str, list[CampaignDay]] = defaultdict(list)
    prior_by_campaign: dict[str, list[CampaignDay]] = defaultdict(list)
    latest: dict[str, CampaignDay] = {}
    for row in days:
        if row.date in period:
            in_period.append(row)
        if row.date in previous:
            in_previous.append(row)
        if row.date in last_week:
            last_by_campaign[row.campaign_id].append(row)
        if row.date in prior_week:
            prior_by_campaign[row.campaign_id].append(row)
        if row.date < today and (row.campaign_id not in latest or row.date >= latest[row.campaign_id].date):
            latest[row.campaign_id] = row

    last_totals = Totals.of(r for rows in last_by_campaign.values() for r in rows)
    prior_totals = Totals.of(r for rows in prior_by_campaign.values() for r in rows)
    history_start = min((r.date for r in days if r.date < today), default=None)
    week_comparable = history_start is not None and history_start <= prior_week.start

    flags: list[Flag] = []
    if week_comparable and not prior_totals.empty:
        flags = _flags(last_totals, prior_totals, label="Account")
    days_last = len({r.date for rows in last_by_campaign.values() for r in rows})
    days_prior = len({r.date for rows in prior_by_campaign.values() for r in rows})
    if history_start is not None and not week_comparable:
        message = (
            f"No week-over-week comparison: the account's data starts {history_start}, "
            f"after the prior week began ({prior_week.start})"
        )
        flags.append(Flag("info", "partial_week", message, 0.0))
    if history_start is not None and history_start > previous.start:
        if history_start > previous.end:
            code = "no_previous_period"
            message = (
                f"No data before {history_start}: no comparison with the previous {range_days} days "
                f"({previous.start} to {previous.end})"
            )
        else:
            code = "previous_period_partial"
            covered = (previous.end - history_start).days + 1
            message = (
                f"The previous {range_days} days have data from {history_start} only ({covered} of "
                f"{range_days} days): no period-over-period change"
            )
        flags.append(Flag("info", code, message, 0.0))

    moves: list[CampaignMove] = []
    prior_cpa = prior_totals.cpa or last_totals.cpa or 0.0
    for campaign_id in sorted(set(last_by_campaign) | set(prior_by_campaign)):
        last = Totals.of(last_by_campaign.get(campaign_id, ()))
        prior = Totals.of(prior_by_campaign.get(campaign_id, ()))
        info = latest[campaign_id]
        score = abs(last.cost - prior.cost) + abs(last.conversions - prior.conversions) * prior_cpa
        moves.append(CampaignMove(campaign_id, info.campaign_name, info.status, last, prior, score))
        big = max(
            last.cost / last_totals.cost if last_totals.cost else 0.0,
            prior.cost / prior_totals.cost if prior_totals.cost else 0.0,
        )
        if week_comparable and big >= CAMPAIGN_FLAG_MIN_SHARE and not prior.empty:
            label = f"Campaign {clip(info.campaign_name, 60)!r}"
            flags.extend(
                _flags(last, prior, label=label, campaign_id=campaign_id, campaign_name=info.campaign_name)
            )
    moves.sort(key=lambda m: (-m.score, m.campaign_id))
    flags.sort(key=lambda f: (_SEVERITY_ORDER[f.severity], f.campaign_id is not None, -f.impact))

    return AccountHealth(
        period=period,
        previous_period=previous,
        last_week=last_week,
        prior_week=prior_week,
        totals=Totals.of(in_period),
        previous_totals=Totals.of(in_previous),
        last_week_totals=last_totals,
        prior_week_totals=prior_totals,
        campaign_count=len({r.campaign_id for r in in_period}),
        movers=tuple(m for m in moves[:TOP_MOVERS] if m.score > 0),
        flags=tuple(flags[:MAX_ITEMS]),
        flags_total=len(flags),
        days_with_data_last_week=days_last,
        days_with_data_prior_week=days_prior,
        history_start=history_start,
    )
