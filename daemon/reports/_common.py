"""Helpers shared by the analyses: safe ratios, rounding, totals, compact text."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

import attrs

JSONDict = dict[str, Any]

# Every ranked list in a result holds at most this many items.
MAX_ITEMS = 20
# Names and terms longer than this are clipped in outputs (never in the analysis).
NAME_LIMIT = 80

INACTIVE_STATUSES = frozenset({"PAUSED", "REMOVED", "DELETED", "ARCHIVED", "DISABLE", "DISABLED"})


def is_active(status: str) -> bool:
    """False for a paused or removed campaign (Google, Meta and TikTok spellings)."""
    return status.strip().upper() not in INACTIVE_STATUSES


def _finite(value: float) -> float:
    if not math.isfinite(value):  # pragma: no cover - inputs are bounded so sums stay finite
        raise ValueError(f"non-finite value {value!r} in a report")
    return value


def money(value: float) -> float:
    """Money rounded to 2 decimals (never -0.0)."""
    return round(_finite(value), 2) + 0.0


def ratio(value: float) -> float:
    """A ratio rounded to 4 decimals (never -0.0)."""
    return round(_finite(value), 4) + 0.0


def qty(value: float) -> float:
    """A fractional quantity (conversions) rounded to 2 decimals."""
    return round(_finite(value), 2) + 0.0


def money_or_none(value: float | None) -> float | None:
    return None if value is None else money(value)


def ratio_or_none(value: float | None) -> float | None:
    return None if value is None else ratio(value)


def div(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when undefined (zero denominator, non-finite result)."""
    if denominator == 0:
        return None
    result = numerator / denominator
    return result if math.isfinite(result) else None


def pct_change(new: float | None, old: float | None) -> float | None:
    """Change from `old` to `new` in percent (2 decimals); None when undefined."""
    if new is None or old is None or old == 0:
        return None
    change = (new - old) / abs(old) * 100.0
    return round(change, 2) + 0.0 if math.isfinite(change) else None


def clip(text: str, limit: int = NAME_LIMIT) -> str:
    """`text` on one line (whitespace runs made one space), cut to `limit` characters with an ellipsis."""
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def fmt_money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def fmt_qty(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"


def fmt_pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def fmt_share(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def plural(count: int, word: str, many: str | None = None) -> str:
    """`count` and `word`, made plural when count is not 1 ("1 campaign", "3 campaigns")."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def period_json(start: date, end: date) -> JSONDict:
    return {"start": start.isoformat(), "end": end.isoformat(), "days": (end - start).days + 1}


class _Measured(Protocol):
    @property
    def impressions(self) -> int: ...
    @property
    def clicks(self) -> int: ...
    @property
    def cost(self) -> float: ...
    @property
    def conversions(self) -> float: ...


@attrs.frozen
class Totals:
    """Summed delivery metrics and the ratios derived from them (None when undefined)."""

    impressions: int = 0
    clicks: int = 0
    cost: float = 0.0
    conversions: float = 0.0
    conversion_value: float = 0.0

    @classmethod
    def of(cls, rows: Iterable[_Measured]) -> Totals:
        impressions = clicks = 0
        cost = conversions = value = 0.0
        for row in rows:
            impressions += row.impressions
            clicks += row.clicks
            cost += row.cost
            conversions += row.conversions
            value += getattr(row, "conversion_value", 0.0)
        return cls(impressions, clicks, cost, conversions, value)

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.impressions + other.impressions,
            self.clicks + other.clicks,
            self.cost + other.cost,
            self.conversions + other.conversions,
            self.conversion_value + other.conversion_value,
        )

    @property
    def ctr(self) -> float | None:
        return div(self.clicks, self.impressions)

    @property
    def cpc(self) -> float | None:
        return div(self.cost, self.clicks)

    @property
    def cpa(self) -> float | None:
        return div(self.cost, self.conversions)

    @property
    def roas(self) -> float | None:
        return div(self.conversion_value, self.cost)

    @property
    def conversion_rate(self) -> float | None:
        return div(self.conversions, self.clicks)

    @property
    def empty(self) -> bool:
        return self.impressions == 0 and self.clicks == 0 and self.cost == 0 and self.conversions == 0

    def to_json(self, *, value: bool = True) -> JSONDict:
        out: JSONDict = {
            "impressions": self.impressions,
            "clicks": self.clicks,
            "cost": money(self.cost),
            "conversions": qty(self.conversions),
        }
        if value:
            out["conversion_value"] = money(self.conversion_value)
        out["ctr"] = ratio_or_none(self.ctr)
        out["cpc"] = money_or_none(self.cpc)
        out["cpa"] = money_or_none(self.cpa)
        if value:
            out["roas"] = ratio_or_none(self.roas)
        out["conversion_rate"] = ratio_or_none(self.conversion_rate)
        return out
