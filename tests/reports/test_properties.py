"""Every analysis, for arbitrary valid inputs, gives strict JSON of bounded size; worst cases stay small."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deneva.reports import (
    Band,
    account_health,
    auction_insights,
    budget_optimizer,
    pmax_breakdown,
    quality_score,
    search_term_waste,
    weekly_anomaly,
)
from deneva.reports.inputs import AssetGroupRow, AuctionRow, CampaignDay, KeywordRow, SearchTermRow
from tests.reports.factories import MAX_JSON_BYTES, TODAY, ago, auction, day, group, keyword, term

MAX_JSON_CHARS = 20_000

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Ids have no control characters and text no NUL (deneva.reports.inputs refuses them).
TEXT = st.characters(blacklist_characters="\x00")  # surrogates are left out by default
ids = st.one_of(
    st.sampled_from(["1", "2", "3", "c4"]),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=64),
)
names = st.text(TEXT, max_size=200)
statuses = st.one_of(
    st.sampled_from(["ENABLED", "PAUSED", "REMOVED", "ACTIVE", "DISABLE"]), st.text(TEXT, max_size=40)
)
counts = st.one_of(st.integers(0, 1000), st.integers(0, 10**15))
amounts = st.one_of(
    st.sampled_from([0.0, 1.0, 100.0]),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
ratios = st.floats(min_value=0, max_value=1)
dates = st.dates(min_value=TODAY - timedelta(days=75), max_value=TODAY + timedelta(days=2))

campaign_days = st.builds(
    CampaignDay,
    date=dates,
    campaign_id=ids,
    campaign_name=names,
    status=statuses,
    impressions=counts,
    clicks=counts,
    cost=amounts,
    conversions=amounts,
    conversion_value=amounts,
    daily_budget=st.none() | amounts,
    budget_lost_share=st.none() | ratios,
)
search_terms = st.builds(
    SearchTermRow,
    search_term=st.one_of(
        st.sampled_from(["free crm", "crm jobs", "crm", "free trial"]), st.text(TEXT, max_size=120)
    ),
    campaign_id=ids,
    campaign_name=names,
    impressions=counts,
    clicks=counts,
    cost=amounts,
    conversions=st.one_of(st.just(0.0), amounts),
    conversion_value=amounts,
    status=st.none() | st.sampled_from(["ADDED", "EXCLUDED", "ADDED_EXCLUDED", "NONE"]),
)
keywords = st.builds(
    KeywordRow,
    keyword=names,
    match_type=st.text(TEXT, max_size=30),
    campaign_id=ids,
    ad_group_id=ids,
    quality_score=st.none() | st.integers(1, 10),
    impressions=counts,
    clicks=counts,
    cost=amounts,
    conversions=amounts,
    campaign_name=st.none() | names,
)
auction_rows = st.builds(
    AuctionRow,
    domain=st.one_of(st.sampled_from(["You", "a.com", "b.com"]), st.text(TEXT, max_size=300)),
    impression_share=ratios,
    overlap_rate=st.none() | ratios,
    outranking_share=st.none() | ratios,
    position_above_rate=st.none() | ratios,
    top_of_page_rate=st.none() | ratios,
    is_self=st.booleans(),
)
asset_groups = st.builds(
    AssetGroupRow,
    asset_group_id=ids,
    asset_group_name=names,
    campaign_id=ids,
    campaign_name=names,
    status=statuses,
    impressions=counts,
    clicks=counts,
    cost=amounts,
    conversions=amounts,
    conversion_value=amounts,
)
bands = st.builds(
    Band,
    method=st.sampled_from(["mad", "std"]),
    k=st.floats(min_value=0.5, max_value=5),
    weeks=st.integers(1, 8),
    by_weekday=st.booleans(),
    min_points=st.integers(2, 5),
    min_relative_width=st.floats(min_value=0, max_value=1),
)


def check(result: Any) -> None:
    """Strict JSON (no NaN or infinity), bounded, with a one-line summary; and stable."""
    data = result.to_json()
    text = json.dumps(data, allow_nan=False, ensure_ascii=False)
    assert len(text) < MAX_JSON_CHARS, len(text)
    assert json.loads(text) == data  # plain JSON types only (no tuples, dates or custom objects)
    assert isinstance(data["summary"], str) and data["summary"] and "\n" not in data["summary"]
    assert isinstance(data["has_data"], bool)
    assert result.to_json() == data


@FAST
@given(st.lists(campaign_days, max_size=40), st.integers(1, 90))
def test_account_health_json(rows: list[CampaignDay], range_days: int) -> None:
    check(account_health(rows, TODAY, range_days))


@FAST
@given(
    st.lists(search_terms, max_size=40),
    st.floats(min_value=0, max_value=100),
    st.integers(1, 90),
)
def test_search_term_waste_json(rows: list[SearchTermRow], min_cost: float, period_days: int) -> None:
    check(search_term_waste(rows, min_cost, period_days=period_days))


@FAST
@given(st.lists(auction_rows, max_size=40))
def test_auction_insights_json(rows: list[AuctionRow]) -> None:
    check(auction_insights(rows))


@FAST
@given(st.lists(keywords, max_size=40))
def test_quality_score_json(rows: list[KeywordRow]) -> None:
    check(quality_score(rows))


@FAST
@given(st.lists(asset_groups, max_size=40))
def test_pmax_breakdown_json(rows: list[AssetGroupRow]) -> None:
    check(pmax_breakdown(rows))


@FAST
@given(st.lists(campaign_days, max_size=40), st.none() | st.floats(min_value=0.01, max_value=1e6))
def test_budget_optimizer_json(rows: list[CampaignDay], target_cpa: float | None) -> None:
    check(budget_optimizer(rows, target_cpa))


@FAST
@given(st.lists(campaign_days, max_size=40), bands)
def test_weekly_anomaly_json(rows: list[CampaignDay], band: Band) -> None:
    check(weekly_anomaly(rows, TODAY, band))


@FAST
@given(st.one_of(campaign_days, search_terms, keywords, auction_rows, asset_groups))
def test_rows_round_trip_through_dicts(row: Any) -> None:
    assert type(row).from_dict(attrs.asdict(row)) == row


# Worst cases: many rows, the longest ids and names, every list full. Sizes in UTF-8 bytes.


def long(prefix: str, i: int, size: int = 200) -> str:
    return f"{prefix} {i} ".ljust(size, "x")


def lid(i: int) -> str:
    return f"{i}".rjust(64, "9")


def size(result: Any) -> int:
    return len(json.dumps(result.to_json(), allow_nan=False).encode())


def worst_days(campaigns: int = 300) -> list[CampaignDay]:
    """Campaigns over 5 weeks; each has a spike, a conversion collapse or a click drop in the last week."""
    rows = []
    for c in range(campaigns):
        for n in range(1, 36):
            recent = n <= 7
            rows.append(
                attrs.evolve(
                    day(
                        ago(n),
                        lid(c),
                        name=long("Campaign", c),
                        status=long("ENABLED", c, 40),
                        cost=(100.0 + c) * (3 if recent and c % 3 == 0 else 1),
                        conversions=0.0 if recent and c % 3 == 1 else 5.0 + c % 7,
                        clicks=10 if recent and c % 3 == 2 else 50,
                        value=500.0 if not recent else 50.0,
                        budget=100.0 + c if c % 2 else 1000.0,
                        lost=0.5 if c % 2 else 0.0,
                    ),
                )
            )
    return rows


WORST: list[tuple[str, Callable[[], Any]]] = [
    ("account_health", lambda: account_health(worst_days(), TODAY, 30)),
    ("budget_optimizer", lambda: budget_optimizer(worst_days())),
    ("weekly_anomaly", lambda: weekly_anomaly(worst_days(40), TODAY)),
    (
        "search_term_waste",
        lambda: search_term_waste(
            [term(long("term", i, 80), 10.0 + i, campaign_id=lid(i % 7)) for i in range(2000)]
            + [term(f"w{i}a w{i}b w{i}c", 5.0 + i, campaign_id=lid(i)) for i in range(500)]
        ),
    ),
    (
        "auction_insights",
        lambda: auction_insights(
            [auction(long("rival", i, 300), i / 1000, 0.5, 0.5, 0.5, 0.5) for i in range(500)]
        ),
    ),
    (
        "quality_score",
        lambda: quality_score(
            [
                attrs.evolve(
                    keyword(long("kw", i), 1 + i % 10, impressions=100, cost=float(i)),
                    campaign_id=lid(i),
                    ad_group_id=lid(i),
                    match_type=long("PHRASE", i, 30),
                    campaign_name=long("Campaign", i),
                )
                for i in range(2000)
            ]
        ),
    ),
    (
        "pmax_breakdown",
        lambda: pmax_breakdown(
            [
                attrs.evolve(
                    group(lid(i), long("Group", i), 10.0 + i, i % 3, 5.0 * i, campaign_id=lid(i % 40)),
                    campaign_name=long("PMax", i),
                    status=long("ENABLED", i, 40),
                )
                for i in range(1000)
            ]
        ),
    ),
]


def test_worst_case_sizes() -> None:
    sizes = {name: size(make()) for name, make in WORST}
    assert all(s < MAX_JSON_BYTES for s in sizes.values()), sizes
