"""Search-term waste: terms that spent and never converted, and the negatives that would stop them.

Terms are compared case- and space-insensitively and summed across campaigns: a
term is wasted when it spent at least `min_cost` in the period and converted
nowhere in the account. Suggested negatives:

- a **phrase** negative for a word that occurs in at least two wasted terms and in
  no converting term (greedy: the word covering the most wasted spend first);
- an **exact** negative for each other wasted term (terms that cannot be keywords,
  over 80 characters or 10 words, are left out).

Terms already excluded (status EXCLUDED or ADDED_EXCLUDED) or that are already
keywords (ADDED) still count as wasted but get no negative, and words of your
keywords are never suggested as phrase negatives.

A negative is suggested at account level (a shared list) when the terms it
covers spent in more than one campaign, else for the one campaign. Savings are
the wasted spend the negatives cover, scaled from `period_days` to 30 days: an
upper bound, since blocked traffic may shift to other terms.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import attrs

from deneva.reports._common import (
    MAX_ITEMS,
    JSONDict,
    Totals,
    clip,
    fmt_money,
    fmt_share,
    money,
    plural,
    ratio,
    ratio_or_none,
)
from deneva.reports.inputs import ReportInputError, SearchTermRow

__all__ = ["NegativeKeyword", "SearchTermWaste", "WastedTerm", "search_term_waste"]

DAYS_PER_MONTH = 30
MAX_KEYWORD_CHARS = 80
MAX_KEYWORD_WORDS = 10
MAX_PHRASE_NEGATIVES = MAX_ITEMS
_MIN_WORD_CHARS = 3
_STOPWORDS = frozenset(
    (  # noqa: SIM905 - a word list reads best as one string
        "the and for with from near what how who why where when are can does did into this that your you "
        "not but all any its our out has have was were will"
    ).split()
)


def _normalise(term: str) -> str:
    return " ".join(term.casefold().split())


def _targeting(rows: Sequence[SearchTermRow]) -> str | None:
    statuses = {(r.status or "").strip().upper() for r in rows}
    if statuses & {"EXCLUDED", "ADDED_EXCLUDED"}:
        return "excluded"
    return "keyword" if "ADDED" in statuses else None


@attrs.frozen
class WastedTerm:
    """One wasted term, summed over the campaigns it spent in."""

    search_term: str
    totals: Totals
    campaigns: tuple[tuple[str, str, float], ...]  # (id, name, cost), most expensive first
    targeting: str | None = None  # "excluded" | "keyword" | None

    def to_json(self) -> JSONDict:
        top_id, top_name, _ = self.campaigns[0]
        return {
            "search_term": clip(self.search_term),
            "cost": money(self.totals.cost),
            "clicks": self.totals.clicks,
            "impressions": self.totals.impressions,
            "ctr": ratio_or_none(self.totals.ctr),
            "campaign_count": len(self.campaigns),
            "top_campaign_id": top_id,
            "top_campaign_name": clip(top_name, 60),
            **({"targeting": self.targeting} if self.targeting else {}),
        }


@attrs.frozen
class NegativeKeyword:
    """A negative keyword to add; `covers` counts the wasted terms it blocks."""

    keyword: str
    match_type: str  # "phrase" | "exact"
    campaign_ids: tuple[str, ...]  # the campaigns the covered terms spent in
    covers: int
    wasted_cost: float
    monthly_savings: float

    @property
    def level(self) -> str:
        return "account" if len(self.campaign_ids) > 1 else "campaign"

    def to_json(self) -> JSONDict:
        out: JSONDict = {
            "keyword": clip(self.keyword),
            "match_type": self.match_type,
            "level": self.level,
        }
        if self.level == "campaign":
            out["campaign_id"] = self.campaign_ids[0]
        out["covers_terms"] = self.covers
        out["wasted_cost"] = money(self.wasted_cost)
        out["estimated_monthly_savings"] = money(self.monthly_savings)
        return out


@attrs.frozen
class SearchTermWaste:
    """The result of `search_term_waste`."""

    min_cost: float
    period_days: int
    totals: Totals
    term_count: int
    wasted_count: int
    wasted: Totals
    top_terms: tuple[WastedTerm, ...]
    negatives: tuple[NegativeKeyword, ...]
    negatives_total: int
    monthly_savings: float
    unsuggestable: int
    already_excluded: int
    keywords: int

    @property
    def has_data(self) -> bool:
        return self.term_count > 0

    @property
    def wasted_share(self) -> float | None:
        return None if self.totals.cost == 0 else self.wasted.cost / self.totals.cost

    def summary(self) -> str:
        if not self.has_data:
            return "No search-term data for this period."
        if not self.wasted_count:
            return (
                f"No wasted search terms: no term with spend >= {fmt_money(self.min_cost)} went without "
                f"a conversion ({self.term_count} terms, spend {fmt_money(self.totals.cost)})."
            )
        worst = self.top_terms[0]
        return (
            f"{plural(self.wasted_count, 'search term')} spent {fmt_money(self.wasted.cost)} "
            f"with no conversions "
            f"({fmt_share(self.wasted_share)} of search-term spend {fmt_money(self.totals.cost)}); "
            f"worst: {clip(worst.search_term, 60)!r} ({fmt_money(worst.totals.cost)}). "
            f"{plural(self.negatives_total, 'negative keyword')} would save about "
            f"{fmt_money(self.monthly_savings)} a month."
            + (
                f" {plural(self.keywords, 'wasted term is a keyword', 'wasted terms are keywords')} "
                f"of yours: pause or refine {'it' if self.keywords == 1 else 'them'}."
                if self.keywords
                else ""
            )
        )

    def to_json(self) -> JSONDict:
        return {
            "report": "search_term_waste",
            "has_data": self.has_data,
            "summary": self.summary(),
            "period_days": self.period_days,
            "min_cost": money(self.min_cost),
            "totals": {
                "terms": self.term_count,
                "cost": money(self.totals.cost),
                "clicks": self.totals.clicks,
                "conversions": round(self.totals.conversions, 2) + 0.0,
            },
            "wasted": {
                "terms": self.wasted_count,
                "cost": money(self.wasted.cost),
                "clicks": self.wasted.clicks,
                "share_of_spend": None if self.wasted_share is None else ratio(self.wasted_share),
            },
            "estimated_monthly_savings": money(self.monthly_savings),
            "top_wasted_terms": [t.to_json() for t in self.top_terms],
            "suggested_negatives": [n.to_json() for n in self.negatives],
            "suggested_negatives_total": self.negatives_total,
            "unsuggestable_terms": self.unsuggestable,
            "already_excluded_terms": self.already_excluded,
            "wasted_terms_that_are_keywords": self.keywords,
        }


def _words(term: str) -> set[str]:
    return {w for w in term.split() if len(w) >= _MIN_WORD_CHARS and w not in _STOPWORDS}


def _campaign_ids(terms: Sequence[WastedTerm]) -> tuple[str, ...]:
    return tuple(sorted({cid for t in terms for cid, _, _ in t.campaigns}))


def search_term_waste(
    rows: Sequence[SearchTermRow], min_cost: float = 1.0, *, period_days: int = 30
) -> SearchTermWaste:
    """Wasted search terms ranked by cost, their share of spend, and negatives to add.

    `min_cost` is the least a term must have spent to count as wasted; `period_days`
    is the length of the period the rows cover (for the monthly savings).
    """
    if isinstance(min_cost, bool) or not isinstance(min_cost, int | float) or not math.isfinite(min_cost):
        raise ReportInputError("must be a finite number", field="min_cost")
    if min_cost < 0:
        raise ReportInputError(f"must be >= 0, got {min_cost}", field="min_cost")
    if isinstance(period_days, bool) or not isinstance(period_days, int) or period_days < 1:
        raise ReportInputError("must be a positive integer", field="period_days")

    by_term: dict[str, list[SearchTermRow]] = defaultdict(list)
    for row in rows:
        by_term[_normalise(row.search_term)].append(row)

    protected_words: set[str] = set()  # in converting terms or your keywords
    wasted: list[WastedTerm] = []
    for term, term_rows in by_term.items():
        totals = Totals.of(term_rows)
        targeting = _targeting(term_rows)
        if targeting == "keyword":
            protected_words |= set(term.split())
        if totals.conversions > 0:
            protected_words |= set(term.split())
        elif totals.cost > 0 and totals.cost >= min_cost:
            per_campaign: dict[str, tuple[str, float]] = {}
            for r in term_rows:
                _, cost = per_campaign.get(r.campaign_id, (r.campaign_name, 0.0))
                per_campaign[r.campaign_id] = (r.campaign_name, cost + r.cost)
            campaigns = sorted(
                ((cid, n, c) for cid, (n, c) in per_campaign.items()), key=lambda x: (-x[2], x[0])
            )
            wasted.append(WastedTerm(term, totals, tuple(campaigns), targeting))
    wasted.sort(key=lambda t: (-t.totals.cost, t.search_term))

    scale = DAYS_PER_MONTH / period_days
    negatives: list[NegativeKeyword] = []

    # Phrase negatives: greedy cover of the wasted spend by words no converting term uses.
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(wasted):
        if t.targeting is None:
            for word in _words(t.search_term) - protected_words:
                by_word[word].append(i)
    covered: set[int] = set()
    while len(negatives) < MAX_PHRASE_NEGATIVES:
        best: tuple[float, str, list[int]] | None = None
        for word, indexes in by_word.items():
            free = [i for i in indexes if i not in covered]
            if len(free) < 2:
                continue
            cost = sum(wasted[i].totals.cost for i in free)
            if best is None or (-cost, word) < (-best[0], best[1]):
                best = (cost, word, free)
        if best is None:
            break
        cost, word, free = best
        terms = [wasted[i] for i in free]
        negatives.append(NegativeKeyword(word, "phrase", _campaign_ids(terms), len(free), cost, cost * scale))
        covered.update(free)

    unsuggestable = 0
    for i, t in enumerate(wasted):
        if i in covered or t.targeting is not None:
            continue
        if len(t.search_term) > MAX_KEYWORD_CHARS or len(t.search_term.split()) > MAX_KEYWORD_WORDS:
            unsuggestable += 1
            continue
        cost = t.totals.cost
        negatives.append(NegativeKeyword(t.search_term, "exact", _campaign_ids([t]), 1, cost, cost * scale))
    negatives.sort(key=lambda n: (-n.wasted_cost, n.match_type != "phrase", n.keyword))

    return SearchTermWaste(
        min_cost=float(min_cost),
        period_days=period_days,
        totals=Totals.of(rows),
        term_count=len(by_term),
        wasted_count=len(wasted),
        wasted=Totals.of(r for t in wasted for r in by_term[t.search_term]),
        top_terms=tuple(wasted[:MAX_ITEMS]),
        negatives=tuple(negatives[:MAX_ITEMS]),
        negatives_total=len(negatives),
        monthly_savings=sum(n.monthly_savings for n in negatives),
        unsuggestable=unsuggestable,
        already_excluded=sum(1 for t in wasted if t.targeting == "excluded"),
        keywords=sum(1 for t in wasted if t.targeting == "keyword"),
    )
