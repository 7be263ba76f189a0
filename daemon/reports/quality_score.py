"""Quality score: its distribution over keywords, impressions and spend, and the costly low scorers.

Unscored keywords (quality_score None: too little traffic for Google to score)
are counted apart and left out of every share and average. "Low" is a quality
score of 4 or less.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from deneva.reports._common import (
    MAX_ITEMS,
    JSONDict,
    clip,
    div,
    fmt_money,
    fmt_share,
    money,
    money_or_none,
    plural,
    qty,
    ratio_or_none,
)
from deneva.reports.inputs import KeywordRow

__all__ = ["LOW_QS", "QualityScore", "ScoreBucket", "quality_score"]

LOW_QS = 4


@attrs.frozen
class ScoreBucket:
    """Keywords with one quality score, and their share of scored impressions and spend."""

    score: int
    keywords: int
    impressions: int
    cost: float
    impression_share: float | None
    cost_share: float | None

    def to_json(self) -> JSONDict:
        return {
            "score": self.score,
            "keywords": self.keywords,
            "impressions": self.impressions,
            "cost": money(self.cost),
            "impression_share": ratio_or_none(self.impression_share),
            "cost_share": ratio_or_none(self.cost_share),
        }


def _keyword_json(row: KeywordRow) -> JSONDict:
    out: JSONDict = {
        "keyword": clip(row.keyword),
        "match_type": clip(row.match_type, 24),
        "quality_score": row.quality_score,
        "campaign_id": row.campaign_id,
        "ad_group_id": row.ad_group_id,
    }
    if row.campaign_name is not None:
        out["campaign_name"] = clip(row.campaign_name, 60)
    out.update(
        cost=money(row.cost),
        impressions=row.impressions,
        clicks=row.clicks,
        conversions=qty(row.conversions),
        ctr=ratio_or_none(div(row.clicks, row.impressions)),
        cpa=money_or_none(div(row.cost, row.conversions)),
    )
    return out


@attrs.frozen
class QualityScore:
    """The result of `quality_score`."""

    keywords: int
    scored: int
    unscored_cost: float
    buckets: tuple[ScoreBucket, ...]  # scores 1..10
    average: float | None
    impression_weighted_average: float | None
    cost_weighted_average: float | None
    low_keywords: int
    low_cost: float
    low_cost_share: float | None
    low_impression_share: float | None
    worst: tuple[KeywordRow, ...]

    @property
    def has_data(self) -> bool:
        return self.keywords > 0

    def summary(self) -> str:
        if not self.has_data:
            return "No keyword data for this period."
        if not self.scored:
            return f"None of the {self.keywords} keywords has a quality score yet (too little traffic)."
        text = (
            f"Average quality score {self.average:.1f} over {self.scored} scored keywords "
            f"({self.cost_weighted_average or 0:.1f} weighted by spend); "
            f"{plural(self.low_keywords, 'keyword')} with QS <= {LOW_QS} "
            f"take {fmt_share(self.low_cost_share)} of spend ({fmt_money(self.low_cost)})."
        )
        if self.worst:
            w = self.worst[0]
            text += (
                f" Costliest low-QS keyword: {clip(w.keyword, 60)!r} "
                f"(QS {w.quality_score}, {fmt_money(w.cost)})."
            )
        return text

    def to_json(self) -> JSONDict:
        def avg(value: float | None) -> float | None:
            return None if value is None else round(value, 2) + 0.0

        return {
            "report": "quality_score",
            "has_data": self.has_data,
            "summary": self.summary(),
            "keywords": {
                "total": self.keywords,
                "scored": self.scored,
                "unscored": self.keywords - self.scored,
            },
            "unscored_cost": money(self.unscored_cost),
            "average_quality_score": {
                "simple": avg(self.average),
                "impression_weighted": avg(self.impression_weighted_average),
                "cost_weighted": avg(self.cost_weighted_average),
            },
            "low_qs_threshold": LOW_QS,
            "low_qs": {
                "keywords": self.low_keywords,
                "cost": money(self.low_cost),
                "cost_share": ratio_or_none(self.low_cost_share),
                "impression_share": ratio_or_none(self.low_impression_share),
            },
            "distribution": [b.to_json() for b in self.buckets],
            "worst_keywords": [_keyword_json(r) for r in self.worst],
        }


def quality_score(rows: Sequence[KeywordRow]) -> QualityScore:
    """Quality-score distribution (by keywords, impressions, spend), low-QS spend, worst keywords."""
    scored = [r for r in rows if r.quality_score is not None]
    impressions = sum(r.impressions for r in scored)
    cost = sum(r.cost for r in scored)
    buckets = []
    for score in range(1, 11):
        group = [r for r in scored if r.quality_score == score]
        group_impressions = sum(r.impressions for r in group)
        group_cost = sum(r.cost for r in group)
        buckets.append(
            ScoreBucket(
                score=score,
                keywords=len(group),
                impressions=group_impressions,
                cost=group_cost,
                impression_share=div(group_impressions, impressions),
                cost_share=div(group_cost, cost),
            )
        )
    low = [r for r in scored if (r.quality_score or 0) <= LOW_QS]
    worst = sorted((r for r in low if r.cost > 0), key=lambda r: (-r.cost, r.quality_score or 0, r.keyword))
    return QualityScore(
        keywords=len(rows),
        scored=len(scored),
        unscored_cost=sum(r.cost for r in rows if r.quality_score is None),
        buckets=tuple(buckets),
        average=div(sum(r.quality_score or 0 for r in scored), len(scored)),
        impression_weighted_average=div(
            sum((r.quality_score or 0) * r.impressions for r in scored), impressions
        ),
        cost_weighted_average=div(sum((r.quality_score or 0) * r.cost for r in scored), cost),
        low_keywords=len(low),
        low_cost=sum(r.cost for r in low),
        low_cost_share=div(sum(r.cost for r in low), cost),
        low_impression_share=div(sum(r.impressions for r in low), impressions),
        worst=tuple(worst[:MAX_ITEMS]),
    )
