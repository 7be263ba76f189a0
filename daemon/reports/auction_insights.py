"""Auction insights: who you compete with, who outranks you, and your share against the leader.

Rows for the same domain (e.g. one per campaign) are averaged, ignoring missing
values. On a competitor's row, `position_above_rate` is how often their ad was
shown above yours when both showed, and `outranking_share` how often you ranked
above them (or showed when they did not). "Outranking you most" ranks
competitors by `above_you_share` = overlap_rate x position_above_rate: the share of
your impressions on which they sat above you.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import attrs

from deneva.reports._common import MAX_ITEMS, JSONDict, clip, fmt_share, ratio, ratio_or_none
from deneva.reports.inputs import AuctionRow

__all__ = ["AuctionInsights", "Competitor", "auction_insights"]


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@attrs.frozen
class Competitor:
    """One domain's metrics, averaged over its rows."""

    domain: str
    impression_share: float
    overlap_rate: float | None
    outranking_share: float | None
    position_above_rate: float | None
    top_of_page_rate: float | None

    @classmethod
    def of(cls, domain: str, rows: Sequence[AuctionRow]) -> Competitor:
        return cls(
            domain=domain,
            impression_share=_mean([r.impression_share for r in rows]) or 0.0,
            overlap_rate=_mean([r.overlap_rate for r in rows]),
            outranking_share=_mean([r.outranking_share for r in rows]),
            position_above_rate=_mean([r.position_above_rate for r in rows]),
            top_of_page_rate=_mean([r.top_of_page_rate for r in rows]),
        )

    @property
    def above_you_share(self) -> float | None:
        if self.overlap_rate is None or self.position_above_rate is None:
            return None
        return self.overlap_rate * self.position_above_rate

    def to_json(self) -> JSONDict:
        return {
            "domain": clip(self.domain),
            "impression_share": ratio(self.impression_share),
            "overlap_rate": ratio_or_none(self.overlap_rate),
            "position_above_rate": ratio_or_none(self.position_above_rate),
            "outranking_share": ratio_or_none(self.outranking_share),
            "top_of_page_rate": ratio_or_none(self.top_of_page_rate),
            "above_you_share": ratio_or_none(self.above_you_share),
        }


@attrs.frozen
class AuctionInsights:
    """The result of `auction_insights`."""

    you: Competitor | None
    competitors: tuple[Competitor, ...]  # all of them, by impression share

    @property
    def has_data(self) -> bool:
        return self.you is not None or bool(self.competitors)

    @property
    def top_competitor(self) -> Competitor | None:
        return self.competitors[0] if self.competitors else None

    @property
    def most_overlap(self) -> Competitor | None:
        ranked = [c for c in self.competitors if c.overlap_rate is not None]
        return min(ranked, key=lambda c: (-(c.overlap_rate or 0.0), c.domain)) if ranked else None

    @property
    def outranking_you_most(self) -> Competitor | None:
        ranked = [c for c in self.competitors if c.above_you_share]
        return min(ranked, key=lambda c: (-(c.above_you_share or 0.0), c.domain)) if ranked else None

    @property
    def share_gap(self) -> float | None:
        """Your impression share minus the top competitor's (negative: they show more)."""
        top = self.top_competitor
        if self.you is None or top is None:
            return None
        return self.you.impression_share - top.impression_share

    def summary(self) -> str:
        if not self.has_data:
            return "No auction insights data for this period."
        you = self.you
        top = self.top_competitor
        parts = []
        if you is None:
            parts.append("Your own row is missing, so shares cannot be compared")
        else:
            parts.append(f"Your impression share is {fmt_share(you.impression_share)}")
        if top is None:
            parts.append("no competitors appeared in your auctions")
        else:
            gap = self.share_gap
            vs = "" if gap is None else f" ({'+' if gap >= 0 else ''}{gap * 100:.1f} points for you)"
            parts.append(
                f"top competitor {clip(top.domain, 60)} has {fmt_share(top.impression_share)}{vs} "
                f"among {len(self.competitors)} competitors"
            )
        text = "; ".join(parts) + "."
        above = self.outranking_you_most
        if above is not None:
            text += (
                f" {clip(above.domain, 60)} outranks you most: above you on "
                f"{fmt_share(above.above_you_share)} "
                f"of your impressions (position above rate {fmt_share(above.position_above_rate)})."
            )
        return text

    def to_json(self) -> JSONDict:
        def named(c: Competitor | None, *keys: str) -> JSONDict | None:
            if c is None:
                return None
            full = c.to_json()
            return {"domain": full["domain"], **{k: full[k] for k in keys}}

        top = self.top_competitor
        top_json = named(top, "impression_share", "overlap_rate", "position_above_rate")
        if top_json is not None:
            top_json["your_share_gap"] = ratio_or_none(self.share_gap)
        return {
            "report": "auction_insights",
            "has_data": self.has_data,
            "summary": self.summary(),
            "you": None
            if self.you is None
            else {k: v for k, v in self.you.to_json().items() if k != "domain"},
            "competitor_count": len(self.competitors),
            "top_competitor": top_json,
            "most_overlap": named(self.most_overlap, "overlap_rate", "impression_share"),
            "outranking_you_most": named(
                self.outranking_you_most, "above_you_share", "position_above_rate", "overlap_rate"
            ),
            "competitors": [c.to_json() for c in self.competitors[:MAX_ITEMS]],
        }


def auction_insights(rows: Sequence[AuctionRow]) -> AuctionInsights:
    """Competitors ranked by impression share (then overlap), with who outranks you most."""
    mine: list[AuctionRow] = []
    theirs: dict[str, list[AuctionRow]] = defaultdict(list)
    names: dict[str, str] = {}
    for row in rows:
        if row.is_account:
            mine.append(row)
        else:
            key = row.domain.strip().casefold()
            theirs[key].append(row)
            names.setdefault(key, row.domain.strip())
    competitors = [Competitor.of(names[key], group) for key, group in theirs.items()]
    competitors.sort(key=lambda c: (-c.impression_share, -(c.overlap_rate or 0.0), c.domain))
    you = Competitor.of("You", mine) if mine else None
    return AuctionInsights(you=you, competitors=tuple(competitors))
