"""Budget optimizer: budget-limited campaigns with a good CPA, and budget to move to them.

Each campaign is judged over all the days given (the caller passes the period):

- **budget-limited**: its mean `budget_lost_share` is above `lost_share_threshold`,
  or on more than half of the days with a known budget it spent at least
  `utilisation_threshold` of its daily budget;
- **good**: active, at least `min_conversions` conversions, and a CPA at or below
  `target_cpa` when given, else strictly below the account's CPA (the benchmark);
- **donor**: active, not budget-limited, a CPA above the benchmark (or no
  conversions after spending at least one benchmark CPA), and unused budget: it
  can give `daily_budget - 1.2 x average daily spend`, which leaves it 20 %
  headroom, so its delivery should not change.

A recipient's extra need per day is estimated from the spend it lost:
`avg daily spend x lost / (1 - lost)`, else 20 % of its budget, capped at 50 % of
its budget (one step at a time). Moves pair recipients (best CPA first) with donors
(worst CPA first). Expected extra conversions assume the recipient keeps its
current CPA: an optimistic estimate, since marginal CPA is usually higher. Since
donors only give budget they do not spend, account spend rises by the amount moved.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import date

import attrs

from deneva.reports._common import (
    MAX_ITEMS,
    JSONDict,
    Totals,
    clip,
    div,
    fmt_money,
    fmt_qty,
    is_active,
    money,
    money_or_none,
    plural,
    qty,
    ratio,
    ratio_or_none,
)
from deneva.reports.inputs import CampaignDay, ReportInputError

__all__ = ["BudgetMove", "BudgetOptimizer", "CampaignBudget", "budget_optimizer"]

DAYS_PER_MONTH = 30
DONOR_HEADROOM = 1.2
FALLBACK_NEED_SHARE = 0.2
MAX_STEP_SHARE = 0.5
MIN_MOVE = 1.0
LIST_LIMIT = 10


@attrs.frozen
class CampaignBudget:
    """One campaign's spend against its budget over the period."""

    campaign_id: str
    campaign_name: str
    status: str
    totals: Totals
    days: int  # from its first row to the last date of the data
    daily_budget: float | None
    lost_share: float | None
    capped_days: int
    budget_days: int
    limited: bool

    @property
    def avg_daily_spend(self) -> float:
        return self.totals.cost / self.days

    @property
    def capped_day_share(self) -> float | None:
        return div(self.capped_days, self.budget_days)

    @property
    def active(self) -> bool:
        return is_active(self.status)

    def to_json(self, **extra: object) -> JSONDict:
        return {
            "campaign_id": self.campaign_id,
            "campaign_name": clip(self.campaign_name, 60),
            "cpa": money_or_none(self.totals.cpa),
            "conversions": qty(self.totals.conversions),
            "cost": money(self.totals.cost),
            "avg_daily_spend": money(self.avg_daily_spend),
            "daily_budget": money_or_none(self.daily_budget),
            "budget_lost_share": ratio_or_none(self.lost_share),
            "capped_day_share": ratio_or_none(self.capped_day_share),
            **extra,
        }


@attrs.frozen
class BudgetMove:
    """Move `daily_amount` of daily budget from a donor to a budget-limited campaign."""

    donor: CampaignBudget
    recipient: CampaignBudget
    daily_amount: float

    @property
    def extra_conversions_per_month(self) -> float:
        return self.daily_amount * DAYS_PER_MONTH / (self.recipient.totals.cpa or math.inf)

    def to_json(self) -> JSONDict:
        return {
            "from_campaign_id": self.donor.campaign_id,
            "from_campaign_name": clip(self.donor.campaign_name, 40),
            "from_cpa": money_or_none(self.donor.totals.cpa),
            "to_campaign_id": self.recipient.campaign_id,
            "to_campaign_name": clip(self.recipient.campaign_name, 40),
            "to_cpa": money_or_none(self.recipient.totals.cpa),
            "daily_amount": money(self.daily_amount),
            "monthly_amount": money(self.daily_amount * DAYS_PER_MONTH),
            "expected_extra_conversions_per_month": qty(self.extra_conversions_per_month),
        }


@attrs.frozen
class BudgetOptimizer:
    """The result of `budget_optimizer`."""

    account: Totals
    period_start: date | None
    period_end: date | None
    benchmark_cpa: float | None
    benchmark_source: str  # "target_cpa" | "account_cpa"
    limited: tuple[CampaignBudget, ...]  # active and budget-limited, best CPA first
    recipients: tuple[CampaignBudget, ...]  # the limited ones with a good CPA
    needs: dict[str, float]  # recipient id -> estimated extra daily budget it could use
    donors: tuple[CampaignBudget, ...]
    releasable: dict[str, float]  # donor id -> unused daily budget it can give
    moves: tuple[BudgetMove, ...]
    unfunded: dict[str, float]  # recipient id -> need left once donors ran out
    reasons: tuple[str, ...]

    @property
    def has_data(self) -> bool:
        return self.period_start is not None

    @property
    def moved_daily(self) -> float:
        return sum(m.daily_amount for m in self.moves)

    @property
    def extra_conversions_per_month(self) -> float:
        return sum(m.extra_conversions_per_month for m in self.moves)

    def summary(self) -> str:
        if not self.has_data:
            return "No campaign data for this period."
        source = "target" if self.benchmark_source == "target_cpa" else "account"
        bench = f"{source} CPA {fmt_money(self.benchmark_cpa)}"
        if not self.moves:
            reason = self.reasons[0] if self.reasons else "nothing qualifies."
            text = f"No budget moves suggested ({bench}): {reason}"
            if self.unfunded:
                total = sum(self.unfunded.values())
                text += (
                    f" Consider raising the budgets of {plural(len(self.unfunded), 'campaign')} "
                    f"by {fmt_money(total)}/day in all."
                )
            return text
        top = self.moves[0]
        return (
            f"{plural(len(self.recipients), 'budget-limited campaign')} beat the {bench}. "
            f"Move {fmt_money(self.moved_daily)}/day in {plural(len(self.moves), 'move')} "
            f"from campaigns with unused budget "
            f"for about {fmt_qty(qty(self.extra_conversions_per_month))} more conversions a month; "
            f"largest: {fmt_money(top.daily_amount)}/day from {clip(top.donor.campaign_name, 40)!r} "
            f"to {clip(top.recipient.campaign_name, 40)!r}."
            + (
                f" {plural(len(self.unfunded), 'campaign')} could still use "
                f"{fmt_money(sum(self.unfunded.values()))}/day more."
                if self.unfunded
                else ""
            )
        )

    def to_json(self) -> JSONDict:
        by_id = {c.campaign_id: c for c in self.recipients}
        return {
            "report": "budget_optimizer",
            "has_data": self.has_data,
            "summary": self.summary(),
            "period": None
            if self.period_start is None or self.period_end is None
            else {"start": self.period_start.isoformat(), "end": self.period_end.isoformat()},
            "benchmark_cpa": money_or_none(self.benchmark_cpa),
            "benchmark_source": self.benchmark_source,
            "account": self.account.to_json(value=False),
            "budget_limited": [
                c.to_json(
                    good_cpa=c.campaign_id in by_id,
                    suggested_daily_increase=money_or_none(self.needs.get(c.campaign_id)),
                )
                for c in self.limited[:LIST_LIMIT]
            ],
            "budget_limited_count": len(self.limited),
            "donors": [
                c.to_json(releasable_daily=money(self.releasable[c.campaign_id]))
                for c in self.donors[:LIST_LIMIT]
            ],
            "donor_count": len(self.donors),
            "moves": [m.to_json() for m in self.moves[:MAX_ITEMS]],
            "moved_daily": money(self.moved_daily),
            "expected_extra_conversions_per_month": qty(self.extra_conversions_per_month),
            "unfunded_increases": [
                {
                    "campaign_id": cid,
                    "campaign_name": clip(by_id[cid].campaign_name, 60),
                    "daily_amount": money(amount),
                    "expected_extra_conversions_per_month": qty(
                        amount * DAYS_PER_MONTH / (by_id[cid].totals.cpa or math.inf)
                    ),
                }
                for cid, amount in list(self.unfunded.items())[:LIST_LIMIT]
            ],
            "reasons": list(self.reasons),
            "assumptions": (
                "Extra conversions assume the current CPA holds; donors give only budget they do not "
                "spend, so account spend rises by the amount moved."
            ),
        }


def _check_ratio(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ReportInputError(f"must be a number in (0, 1], got {value!r}", field=name)


def _campaigns(
    days: Sequence[CampaignDay], last_date: date, lost_threshold: float, utilisation: float
) -> list[CampaignBudget]:
    by_campaign: dict[str, list[CampaignDay]] = defaultdict(list)
    for row in days:
        by_campaign[row.campaign_id].append(row)
    out = []
    for cid, rows in sorted(by_campaign.items()):
        rows.sort(key=lambda r: r.date)
        budgets = [r for r in rows if r.daily_budget is not None and r.daily_budget > 0]
        losts = [r.budget_lost_share for r in rows if r.budget_lost_share is not None]
        lost = sum(losts) / len(losts) if losts else None
        # Several rows for one day (should not happen) count as one day.
        spend_by_day: dict[date, float] = defaultdict(float)
        budget_by_day: dict[date, float] = {}
        for r in budgets:
            spend_by_day[r.date] += r.cost
            budget_by_day[r.date] = r.daily_budget or 0.0
        capped = sum(1 for d, b in budget_by_day.items() if spend_by_day[d] >= utilisation * b)
        limited = (lost is not None and lost > lost_threshold) or (
            bool(budget_by_day) and capped > len(budget_by_day) / 2
        )
        out.append(
            CampaignBudget(
                campaign_id=cid,
                campaign_name=rows[-1].campaign_name,
                status=rows[-1].status,
                totals=Totals.of(rows),
                days=(last_date - rows[0].date).days + 1,
                daily_budget=budgets[-1].daily_budget if budgets else None,
                lost_share=lost,
                capped_days=capped,
                budget_days=len(budget_by_day),
                limited=limited,
            )
        )
    return out


def _need(c: CampaignBudget) -> float:
    """Extra daily budget a limited campaign could use, capped at one step."""
    base = c.daily_budget if c.daily_budget is not None else c.avg_daily_spend
    cap = MAX_STEP_SHARE * base
    if c.lost_share is not None and c.lost_share > 0:
        need = cap if c.lost_share >= 1 else c.avg_daily_spend * c.lost_share / (1 - c.lost_share)
    else:
        need = FALLBACK_NEED_SHARE * base
    return min(need, cap)


def budget_optimizer(
    days: Sequence[CampaignDay],
    target_cpa: float | None = None,
    *,
    lost_share_threshold: float = 0.10,
    utilisation_threshold: float = 0.95,
    min_conversions: float = 3.0,
) -> BudgetOptimizer:
    """Budget-limited campaigns with a good CPA, and moves to them of poor campaigns' unused budget."""
    if target_cpa is not None and (
        isinstance(target_cpa, bool)
        or not isinstance(target_cpa, int | float)
        or not math.isfinite(target_cpa)
        or target_cpa <= 0
    ):
        raise ReportInputError(f"must be a positive number or None, got {target_cpa!r}", field="target_cpa")
    _check_ratio("lost_share_threshold", lost_share_threshold)
    _check_ratio("utilisation_threshold", utilisation_threshold)
    if (
        isinstance(min_conversions, bool)
        or not isinstance(min_conversions, int | float)
        or min_conversions < 0
    ):
        raise ReportInputError(f"must be a number >= 0, got {min_conversions!r}", field="min_conversions")

    account = Totals.of(days)
    source = "target_cpa" if target_cpa is not None else "account_cpa"
    benchmark = float(target_cpa) if target_cpa is not None else account.cpa
    if not days:
        return BudgetOptimizer(
            account=account,
            period_start=None,
            period_end=None,
            benchmark_cpa=benchmark,
            benchmark_source=source,
            limited=(),
            recipients=(),
            needs={},
            donors=(),
            releasable={},
            moves=(),
            unfunded={},
            reasons=("No campaign data for this period.",),
        )
    start = min(r.date for r in days)
    end = max(r.date for r in days)
    campaigns = _campaigns(days, end, lost_share_threshold, utilisation_threshold)

    def good(c: CampaignBudget) -> bool:
        cpa = c.totals.cpa
        if benchmark is None or cpa is None or c.totals.conversions < min_conversions:
            return False
        return cpa <= benchmark if target_cpa is not None else cpa < benchmark

    def poor(c: CampaignBudget) -> bool:
        if benchmark is None:
            return False
        cpa = c.totals.cpa
        return cpa > benchmark if cpa is not None else c.totals.cost >= benchmark

    limited = sorted(
        (c for c in campaigns if c.active and c.limited),
        key=lambda c: (c.totals.cpa is None, c.totals.cpa or 0.0, c.campaign_id),
    )
    recipients = [c for c in limited if good(c)]
    needs = {c.campaign_id: _need(c) for c in recipients}
    releasable = {
        c.campaign_id: c.daily_budget - DONOR_HEADROOM * c.avg_daily_spend
        for c in campaigns
        if c.active and not c.limited and c.daily_budget is not None and poor(c)
    }
    releasable = {cid: amount for cid, amount in releasable.items() if amount >= MIN_MOVE}
    donors = sorted(
        (c for c in campaigns if c.campaign_id in releasable),
        key=lambda c: (
            c.totals.cpa is not None,
            -(c.totals.cpa or 0.0),
            -releasable[c.campaign_id],
            c.campaign_id,
        ),
    )

    moves: list[BudgetMove] = []
    left = dict(releasable)
    unfunded: dict[str, float] = {}
    for recipient in recipients:
        need = needs[recipient.campaign_id]
        for donor in donors:
            if need < MIN_MOVE:
                break
            amount = round(min(need, left[donor.campaign_id]), 2)
            if amount < MIN_MOVE:
                continue
            moves.append(BudgetMove(donor, recipient, amount))
            left[donor.campaign_id] -= amount
            need -= amount
        if need >= MIN_MOVE:
            unfunded[recipient.campaign_id] = need

    reasons: list[str] = []
    if benchmark is None:
        reasons.append(
            "The account has no conversions, so there is no CPA to compare against (give a target CPA)."
        )
    elif not limited:
        reasons.append(
            f"No active campaign is budget-limited (budget lost impression share above "
            f"{ratio(lost_share_threshold):g} or spend >= {ratio(utilisation_threshold):g} "
            f"of the daily budget on most days)."
        )
    elif not recipients:
        reasons.append(
            f"{plural(len(limited), 'budget-limited campaign')}, but none has a CPA "
            f"{'at or below' if target_cpa is not None else 'below'} {fmt_money(benchmark)} "
            f"with at least {fmt_qty(min_conversions)} conversions."
        )
    elif not donors:
        reasons.append(
            f"No active campaign with a CPA above {fmt_money(benchmark)} has unused budget to give; "
            f"raise the budget-limited campaigns' budgets instead."
        )
    elif unfunded:
        reasons.append("Donors' unused budget does not cover every budget-limited campaign's need.")
    elif not moves:
        reasons.append(f"The budget-limited campaigns need less than {fmt_money(MIN_MOVE)}/day more.")

    return BudgetOptimizer(
        account=account,
        period_start=start,
        period_end=end,
        benchmark_cpa=benchmark,
        benchmark_source=source,
        limited=tuple(limited),
        recipients=tuple(recipients),
        needs=needs,
        donors=tuple(donors),
        releasable=releasable,
        moves=tuple(moves),
        unfunded=unfunded,
        reasons=tuple(reasons),
    )
