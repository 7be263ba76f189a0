"""The normalised row schemas: one per kind of report, the same on every platform.

Each adapter turns its platform's rows into plain dicts with exactly these keys, built
by the functions below (so the keys cannot drift). They map field for field onto
`deneva.reports.inputs` (unknown keys are ignored there). Conventions: ids are strings;
dates are ISO strings "YYYY-MM-DD"; money is a float in the account currency (not
micros, not cents); ratios are fractions in 0..1; counts are ints; enums are the
platform's upper-case words; a number the platform does not have is None.

campaign_day (account_health, budget_optimizer, weekly_anomaly; google, meta, tiktok)
    date              str    the day
    campaign_id       str
    campaign_name     str
    campaign_type     str|None  Google advertising channel (SEARCH, PERFORMANCE_MAX, ...),
                             Meta objective (OUTCOME_SALES, ...), TikTok objective_type
    status            str    ENABLED | PAUSED | REMOVED, or UNKNOWN when the platform did
                             not list the campaign
    impressions       int
    clicks            int
    cost              float
    conversions       float  Google conversions; Meta purchases + leads; TikTok conversion
    conversion_value  float  Google conversions_value; Meta purchase value; TikTok
                             total_purchase_value
    daily_budget      float|None  the campaign's daily budget now (None: shared, lifetime
                             or no budget)
    budget_lost_share float|None  search impression share lost to budget (Google search
                             campaigns only)

search_term (search_term_waste; google), summed over the range
    search_term, match_type (str|None), status (ADDED | EXCLUDED | NONE ..., str|None),
    campaign_id, campaign_name, ad_group_id, ad_group_name,
    impressions, clicks, cost, conversions, conversion_value

keyword (quality_score; google), summed over the range, with today's quality info
    keyword_id, keyword, match_type, status, quality_score (int 1..10 | None when not
    scored), expected_ctr, ad_relevance, landing_page_experience (BELOW_AVERAGE |
    AVERAGE | ABOVE_AVERAGE | None), campaign_id, campaign_name, ad_group_id,
    ad_group_name, impressions, clicks, cost, conversions

auction (auction_insights; google), one row per campaign and domain over the range
    campaign_id, campaign_name, domain ("You" for the account itself), is_self (bool),
    impression_share (float), overlap_rate, outranking_share, position_above_rate,
    top_of_page_rate, abs_top_of_page_rate (float|None; the first three are None on
    the account's own row). Rows without an impression share are left out.

asset_group (pmax_breakdown; google), summed over the range
    asset_group_id, asset_group_name, status, ad_strength (str|None), campaign_id,
    campaign_name, impressions, clicks, cost, conversions, conversion_value
"""

from __future__ import annotations

from typing import Any, Final

_Optional = str | None
_OptionalFloat = float | None
_OptionalInt = int | None

# Field -> the Python type(s) its value has, per schema (tests check every row against it).
ROW_FIELDS: Final[dict[str, dict[str, Any]]] = {
    "campaign_day": {
        "date": str,
        "campaign_id": str,
        "campaign_name": str,
        "campaign_type": _Optional,
        "status": str,
        "impressions": int,
        "clicks": int,
        "cost": float,
        "conversions": float,
        "conversion_value": float,
        "daily_budget": _OptionalFloat,
        "budget_lost_share": _OptionalFloat,
    },
    "search_term": {
        "search_term": str,
        "match_type": _Optional,
        "status": _Optional,
        "campaign_id": str,
        "campaign_name": str,
        "ad_group_id": str,
        "ad_group_name": str,
        "impressions": int,
        "clicks": int,
        "cost": float,
        "conversions": float,
        "conversion_value": float,
    },
    "keyword": {
        "keyword_id": str,
        "keyword": str,
        "match_type": str,
        "status": str,
        "quality_score": _OptionalInt,
        "expected_ctr": _Optional,
        "ad_relevance": _Optional,
        "landing_page_experience": _Optional,
        "campaign_id": str,
        "campaign_name": str,
        "ad_group_id": str,
        "ad_group_name": str,
        "impressions": int,
        "clicks": int,
        "cost": float,
        "conversions": float,
    },
    "auction": {
        "campaign_id": str,
        "campaign_name": str,
        "domain": str,
        "is_self": bool,
        "impression_share": float,
        "overlap_rate": _OptionalFloat,
        "outranking_share": _OptionalFloat,
        "position_above_rate": _OptionalFloat,
        "top_of_page_rate": _OptionalFloat,
        "abs_top_of_page_rate": _OptionalFloat,
    },
    "asset_group": {
        "asset_group_id": str,
        "asset_group_name": str,
        "status": str,
        "ad_strength": _Optional,
        "campaign_id": str,
        "campaign_name": str,
        "impressions": int,
        "clicks": int,
        "cost": float,
        "conversions": float,
        "conversion_value": float,
    },
}


def campaign_day(
    *,
    date: str,
    campaign_id: str,
    campaign_name: str,
    campaign_type: str | None,
    status: str,
    impressions: int,
    clicks: int,
    cost: float,
    conversions: float,
    conversion_value: float,
    daily_budget: float | None,
    budget_lost_share: float | None,
) -> dict[str, Any]:
    return {
        "date": date,
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
        "campaign_type": campaign_type,
        "status": status,
        "impressions": impressions,
        "clicks": clicks,
        "cost": cost,
        "conversions": conversions,
        "conversion_value": conversion_value,
        "daily_budget": daily_budget,
        "budget_lost_share": budget_lost_share,
    }


def search_term(
    *,
    search_term: str,
    match_type: str | None,
    status: str | None,
    campaign_id: str,
    campaign_name: str,
    ad_group_id: str,
    ad_group_name: str,
    impressions: int,
    clicks: int,
    cost: float,
    conversions: float,
    conversion_value: float,
) -> dict[str, Any]:
    return {
        "search_term": search_term,
        "match_type": match_type,
        "status": status,
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
        "ad_group_id": ad_group_id,
        "ad_group_name": ad_group_name,
        "impressions": impressions,
        "clicks": clicks,
        "cost": cost,
        "conversions": conversions,
        "conversion_value": conversion_value,
    }


def keyword(
    *,
    keyword_id: str,
    keyword: str,
    match_type: str,
    status: str,
    quality_score: int | None,
    expected_ctr: str | None,
    ad_relevance: str | None,
    landing_page_experience: str | None,
    campaign_id: str,
    campaign_name: str,
    ad_group_id: str,
    ad_group_name: str,
    impressions: int,
    clicks: int,
    cost: float,
    conversions: float,
) -> dict[str, Any]:
    return {
        "keyword_id": keyword_id,
        "keyword": keyword,
        "match_type": match_type,
        "status": status,
        "quality_score": quality_score,
        "expected_ctr": expected_ctr,
        "ad_relevance": ad_relevance,
        "landing_page_experience": landing_page_experience,
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
        "ad_group_id": ad_group_id,
        "ad_group_name": ad_group_name,
        "impressions": impressions,
        "clicks": clicks,
        "cost": cost,
        "conversions": conversions,
    }


def auction(
    *,
    campaign_id: str,
    campaign_name: str,
    domain: str,
    is_self: bool,
    impression_share: float,
    overlap_rate: float | None,
    outranking_share: float | None,
    position_above_rate: float | None,
    top_of_page_rate: float | None,
    abs_top_of_page_rate: float | None,
) -> dict[str, Any]:
    return {
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
        "domain": domain,
        "is_self": is_self,
        "impression_share": impression_share,
        "overlap_rate": overlap_rate,
        "outranking_share": outranking_share,
        "position_above_rate": position_above_rate,
        "top_of_page_rate": top_of_page_rate,
        "abs_top_of_page_rate": abs_top_of_page_rate,
    }


def asset_group(
    *,
    asset_group_id: str,
    asset_group_name: str,
    status: str,
    ad_strength: str | None,
    campaign_id: str,
    campaign_name: str,
    impressions: int,
    clicks: int,
    cost: float,
    conversions: float,
    conversion_value: float,
) -> dict[str, Any]:
    return {
        "asset_group_id": asset_group_id,
        "asset_group_name": asset_group_name,
        "status": status,
        "ad_strength": ad_strength,
        "campaign_id": campaign_id,
        "campaign_name": campaign_name,
        "impressions": impressions,
        "clicks": clicks,
        "cost": cost,
        "conversions": conversions,
        "conversion_value": conversion_value,
    }
