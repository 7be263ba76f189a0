"""Portfolio overview: every connected account of a tenant on every platform, from each
account's cached account health, side by side and summed per platform and per currency.

Pure: it takes each account's account-health numbers (`AccountFigures`, read from the
cache by `deneva.sync.portfolio`) and returns the overview. Money is never summed
across currencies: totals are per (platform, currency) and per currency ("blended"
across platforms); an account whose currency is not known is its own group,
"unknown". A total's period-over-period change is made only when every account in it
has a complete previous period (`coverage`), otherwise it is None and the accounts
left out of the comparison are counted, so no sum compares a full period with a part.
An account without a cached account health yet is listed as `pending`, with no numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from deneva.reports._common import (
    JSONDict,
    Totals,
    fmt_money,
    fmt_pct,
    fmt_qty,
    money,
    money_or_none,
    pct_change,
    plural,
    qty,
    ratio_or_none,
)

__all__ = ["AccountFigures", "Portfolio", "portfolio"]

UNKNOWN_CURRENCY = "unknown"


@attrs.frozen
class AccountFigures:
    """One account's place in the portfolio: its health and freshness, and its cached
    account-health numbers when there are some (`totals` None: not cached yet)."""

    platform: str
    account_id: str
    healthy: bool
    last_error_code: str | None
    totals: Totals | None = None
    previous_totals: Totals | None = None
    coverage: str = "none"  # of the previous period: complete | partial | none
    currency: str | None = None
    fetched_at: str | None = None  # ISO timestamps
    expires_at: str | None = None
    stale: bool = False

    @property
    def pending(self) -> bool:
        return self.totals is None

    @property
    def currency_key(self) -> str:
        return self.currency or UNKNOWN_CURRENCY


def _change(new: Totals, old: Totals | None) -> JSONDict:
    if old is None:
        return {"spend": None, "conversions": None, "cpa": None, "roas": None}
    return {
        "spend": pct_change(new.cost, old.cost),
        "conversions": pct_change(new.conversions, old.conversions),
        "cpa": pct_change(new.cpa, old.cpa),
        "roas": pct_change(new.roas, old.roas),
    }


def _figures(t: Totals) -> JSONDict:
    return {
        "spend": money(t.cost),
        "conversions": qty(t.conversions),
        "conversion_value": money(t.conversion_value),
        "cpa": money_or_none(t.cpa),
        "roas": ratio_or_none(t.roas),
    }


@attrs.frozen
class Group:
    """The sum of some accounts in one currency (a platform's, or the blend across platforms)."""

    currency: str
    accounts: tuple[AccountFigures, ...]

    @property
    def totals(self) -> Totals:
        return sum((a.totals for a in self.accounts if a.totals is not None), Totals())

    @property
    def comparable(self) -> bool:
        return all(a.coverage == "complete" for a in self.accounts)

    @property
    def previous(self) -> Totals | None:
        if not self.comparable:
            return None
        return sum((a.previous_totals or Totals() for a in self.accounts), Totals())

    def to_json(self) -> JSONDict:
        previous = self.previous
        return {
            "currency": self.currency,
            "accounts": len(self.accounts),
            **_figures(self.totals),
            "previous": None if previous is None else _figures(previous),
            "change_pct": _change(self.totals, previous),
            "accounts_without_previous_period": sum(1 for a in self.accounts if a.coverage != "complete"),
        }


def _groups(accounts: Iterable[AccountFigures]) -> list[Group]:
    by_currency: dict[str, list[AccountFigures]] = defaultdict(list)
    for a in accounts:
        if not a.pending:
            by_currency[a.currency_key].append(a)
    return [Group(c, tuple(items)) for c, items in sorted(by_currency.items())]


def _account_json(a: AccountFigures) -> JSONDict:
    out: JSONDict = {
        "platform": a.platform,
        "account_id": a.account_id,
        "status": "pending" if a.pending else "cached",
        "healthy": a.healthy,
        "last_error_code": a.last_error_code,
        "currency": a.currency,
        "fetched_at": a.fetched_at,
        "expires_at": a.expires_at,
        "stale": a.stale,
    }
    if a.totals is not None:
        comparable = a.coverage == "complete"
        out.update(_figures(a.totals))
        out["previous_period_coverage"] = a.coverage
        out["previous"] = (
            _figures(a.previous_totals) if comparable and a.previous_totals is not None else None
        )
        out["change_pct"] = _change(a.totals, a.previous_totals if comparable else None)
    return out


@attrs.frozen
class Portfolio:
    date_range: str
    accounts: tuple[AccountFigures, ...]
    truncated: bool = False

    @property
    def has_data(self) -> bool:
        return any(not a.pending for a in self.accounts)

    @property
    def pending_count(self) -> int:
        return sum(1 for a in self.accounts if a.pending)

    def summary(self) -> str:
        if not self.accounts:
            return "No ad account is connected for this tenant."
        cached = [a for a in self.accounts if not a.pending]
        pending = len(self.accounts) - len(cached)
        head = f"{plural(len(self.accounts), 'account')} over {self.date_range.replace('_', ' ')}"
        if not cached:
            return f"{head}: none has a cached account health yet; refreshes are queued."
        parts = []
        for group in _groups(self.accounts):
            t = group.totals
            change = _change(t, group.previous)["spend"]
            vs = f" ({fmt_pct(change)} vs previous period)" if group.previous is not None else ""
            parts.append(
                f"{group.currency} {fmt_money(t.cost)} spend{vs}, {fmt_qty(t.conversions)} conversions, "
                f"CPA {fmt_money(t.cpa)}"
            )
        text = f"{head}: " + "; ".join(parts) + "."
        unhealthy = sum(1 for a in self.accounts if not a.healthy)
        stale = sum(1 for a in cached if a.stale)
        if pending:
            text += f" {plural(pending, 'account')} pending (refresh queued)."
        if unhealthy:
            text += f" {plural(unhealthy, 'account')} unhealthy."
        if stale:
            text += f" {plural(stale, 'account')} stale."
        return text

    def to_json(self) -> JSONDict:
        platforms: dict[str, list[JSONDict]] = {}
        for platform in sorted({a.platform for a in self.accounts}):
            mine = [a for a in self.accounts if a.platform == platform]
            platforms[platform] = [g.to_json() for g in _groups(mine)]
        return {
            "report": "portfolio_overview",
            "has_data": self.has_data,
            "summary": self.summary(),
            "date_range": self.date_range,
            "accounts": [_account_json(a) for a in self.accounts],
            "by_platform": platforms,
            "blended": [g.to_json() for g in _groups(self.accounts)],
            "pending_accounts": self.pending_count,
            "truncated": self.truncated,
        }


def portfolio(accounts: Sequence[AccountFigures], date_range: str, *, truncated: bool = False) -> Portfolio:
    """The overview of `accounts` (ordered by platform, then account id)."""
    ordered = tuple(sorted(accounts, key=lambda a: (a.platform, a.account_id)))
    return Portfolio(date_range, ordered, truncated)


def totals_from_json(data: Any) -> Totals | None:
    """Totals from an account-health payload's `totals` object, None if absent or malformed."""
    if not isinstance(data, dict):
        return None
    try:
        return Totals(
            int(data["impressions"]),
            int(data["clicks"]),
            float(data["cost"]),
            float(data["conversions"]),
            float(data.get("conversion_value") or 0.0),
        )
    except (KeyError, TypeError, ValueError):
        return None
