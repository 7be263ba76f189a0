"""Small builders for hand-made report input rows, and a JSON check every test uses."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any, Protocol

from deneva.reports.inputs import AssetGroupRow, AuctionRow, CampaignDay, KeywordRow, SearchTermRow

# A Saturday; the last 7 days are 2024-06-08 (Sat) .. 2024-06-14 (Fri).
TODAY = date(2024, 6, 15)
MAX_JSON_BYTES = 20_000


class HasJson(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def dump(result: HasJson) -> dict[str, Any]:
    """`result.to_json()`, checked to be strict (NaN-free) JSON of bounded size, read back."""
    text = json.dumps(result.to_json(), allow_nan=False, ensure_ascii=False)
    assert len(text.encode()) < MAX_JSON_BYTES
    data: dict[str, Any] = json.loads(text)
    assert isinstance(data["summary"], str) and data["summary"]
    assert "\n" not in data["summary"]
    return data


def day(
    when: date,
    campaign_id: str = "c1",
    *,
    name: str | None = None,
    status: str = "ENABLED",
    impressions: int = 1000,
    clicks: int = 50,
    cost: float = 100.0,
    conversions: float = 5.0,
    value: float = 0.0,
    budget: float | None = None,
    lost: float | None = None,
) -> CampaignDay:
    return CampaignDay(
        date=when,
        campaign_id=campaign_id,
        campaign_name=name if name is not None else f"Campaign {campaign_id}",
        status=status,
        impressions=impressions,
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        conversion_value=value,
        daily_budget=budget,
        budget_lost_share=lost,
    )


def term(
    text: str,
    cost: float,
    conversions: float = 0.0,
    *,
    campaign_id: str = "c1",
    clicks: int = 10,
    impressions: int = 100,
) -> SearchTermRow:
    return SearchTermRow(
        search_term=text,
        campaign_id=campaign_id,
        campaign_name=f"Campaign {campaign_id}",
        impressions=impressions,
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        conversion_value=conversions * 50,
    )


def keyword(
    text: str, score: int | None, *, impressions: int, cost: float, conversions: float = 0.0, clicks: int = 10
) -> KeywordRow:
    return KeywordRow(
        keyword=text,
        match_type="PHRASE",
        campaign_id="c1",
        ad_group_id="g1",
        quality_score=score,
        impressions=impressions,
        clicks=clicks,
        cost=cost,
        conversions=conversions,
    )


def auction(
    domain: str,
    share: float,
    overlap: float | None = None,
    above: float | None = None,
    outranking: float | None = None,
    top: float | None = None,
    *,
    is_self: bool = False,
) -> AuctionRow:
    return AuctionRow(
        domain=domain,
        impression_share=share,
        overlap_rate=overlap,
        outranking_share=outranking,
        position_above_rate=above,
        top_of_page_rate=top,
        is_self=is_self,
    )


def group(
    group_id: str,
    name: str,
    cost: float,
    conversions: float,
    value: float = 0.0,
    *,
    campaign_id: str = "p1",
) -> AssetGroupRow:
    return AssetGroupRow(
        asset_group_id=group_id,
        asset_group_name=name,
        campaign_id=campaign_id,
        campaign_name=f"PMax {campaign_id}",
        status="ENABLED",
        impressions=1000,
        clicks=100,
        cost=cost,
        conversions=conversions,
        conversion_value=value,
    )
