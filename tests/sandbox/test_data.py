"""The synthetic accounts: deterministic, realistic, and every level adds up."""

from __future__ import annotations

from datetime import date, timedelta

import attrs

from deneva.sandbox.data import (
    PLATFORMS,
    ZERO,
    Measures,
    account_for,
    ad_days,
    ad_group_days,
    asset_group_days,
    campaign_day,
    day_shape,
    keyword_days,
    search_term_days,
    stable_hash,
)
from deneva.sandbox.dates import HISTORY_DAYS, DateRange, google_during, history, meta_preset

DAY = date(2024, 5, 20)


def test_an_account_is_a_function_of_platform_id_and_seed() -> None:
    a = account_for("google", "1234567890")
    assert account_for("google", "1234567890") == a
    assert attrs.asdict(account_for.__wrapped__("google", "1234567890")) == attrs.asdict(a)
    assert account_for("google", "1234567891") != a
    assert account_for("google", "1234567890", seed=1) != a
    assert account_for("meta", "1234567890") != a


def test_stable_hash_does_not_depend_on_the_process() -> None:
    # Pinned: a change here changes every synthetic account.
    assert stable_hash("google", "1234567890", 0) == stable_hash("google", "1234567890", 0)
    assert stable_hash("a", 1) != stable_hash("a", 2)


def test_accounts_have_3_to_12_campaigns_with_names_statuses_and_budgets() -> None:
    counts = set()
    statuses = set()
    for platform in PLATFORMS:
        for n in range(40):
            account = account_for(platform, str(1_000_000_000 + n))
            counts.add(len(account.campaigns))
            for c in account.campaigns:
                assert c.name and c.id.isdigit() and c.daily_budget >= 5
                statuses.add(c.status)
            assert len({c.id for c in account.campaigns}) == len(account.campaigns)
    assert min(counts) >= 3 and max(counts) <= 12 and len(counts) > 5
    assert statuses == {"ENABLED", "PAUSED", "REMOVED"}


def test_google_accounts_have_search_pmax_keywords_terms_and_competitors() -> None:
    account = account_for("google", "1234567890")
    channels = {c.channel for c in account.campaigns}
    assert {"SEARCH", "PERFORMANCE_MAX"} <= channels
    keywords = [k for c in account.campaigns for g in c.ad_groups for k in g.keywords]
    scores = {k.quality_score for k in keywords if k.quality_score is not None}
    assert scores and scores <= set(range(1, 11))
    terms = [t for c in account.campaigns for g in c.ad_groups for t in g.search_terms]
    assert any(t.cvr_mult == 0 for t in terms), "some search terms must be pure waste"
    assert 3 <= len(account.competitors) <= 8
    pmax = [c for c in account.campaigns if c.channel == "PERFORMANCE_MAX"]
    assert all(c.asset_groups for c in pmax)


def test_children_add_up_to_their_parent_every_day() -> None:
    account = account_for("google", "1234567890")
    for c in account.campaigns:
        for day in DateRange(DAY, DAY + timedelta(days=6)):
            parent = campaign_day(account, c, day)
            if c.ad_groups:
                groups = ad_group_days(account, c, day)
                _assert_sum(groups, parent)
                for n in range(len(c.ad_groups)):
                    if c.ad_groups[n].keywords:
                        _assert_sum(keyword_days(account, c, n, day), groups[n])
                        _assert_sum(search_term_days(account, c, n, day), groups[n])
                    _assert_sum(ad_days(account, c, n, day), groups[n])
            if c.asset_groups:
                _assert_sum(asset_group_days(account, c, day), parent)


def _assert_sum(children: tuple[Measures, ...], parent: Measures) -> None:
    total = ZERO
    for child in children:
        total = total + child
    assert total.impressions == parent.impressions
    assert total.clicks == parent.clicks
    assert total.cost_micros == parent.cost_micros
    assert abs(total.conversions - parent.conversions) < 0.011


def test_paused_and_removed_campaigns_do_not_deliver() -> None:
    for n in range(30):
        account = account_for("meta", str(5000 + n))
        for c in account.campaigns:
            m = campaign_day(account, c, DAY)
            if c.status != "ENABLED":
                assert m == ZERO


def test_budget_limited_campaigns_lose_search_impression_share_to_budget() -> None:
    account = account_for("google", "1234567890")
    limited = [c for c in account.campaigns if c.budget_limited and c.channel == "SEARCH"]
    assert limited
    for c in limited:
        m = campaign_day(account, c, DAY)
        assert m.budget_lost > 0
        assert m.cost_micros <= c.daily_budget * 2_000_000


def test_some_campaign_days_are_anomalies() -> None:
    kinds = set()
    for n in range(10):
        account = account_for("google", str(2_000_000_000 + n))
        for c in account.campaigns:
            for day in history(DAY):
                shape = day_shape(account, c, day)
                if shape.spike > 1:
                    kinds.add("spike")
                    if c.delivering:
                        normal = campaign_day(account, c, day - timedelta(days=7))
                        assert campaign_day(account, c, day).impressions > normal.impressions
                elif shape.conversion_factor < 1:
                    kinds.add("drop")
    assert kinds == {"spike", "drop"}


def test_a_days_metrics_do_not_depend_on_today() -> None:
    account = account_for("tiktok", "7000000000000000001")
    c = account.campaigns[0]
    assert campaign_day(account, c, DAY) == campaign_day(account, c, DAY)
    assert DAY in history(DAY + timedelta(days=1))
    assert DAY in history(DAY + timedelta(days=100))
    assert history(DAY).days == HISTORY_DAYS


def test_named_date_ranges() -> None:
    today = date(2024, 6, 5)  # a Wednesday
    assert google_during("LAST_7_DAYS", today) == DateRange(date(2024, 5, 29), date(2024, 6, 4))
    assert google_during("LAST_30_DAYS", today) == DateRange(date(2024, 5, 6), date(2024, 6, 4))
    assert google_during("YESTERDAY", today) == DateRange(date(2024, 6, 4), date(2024, 6, 4))
    assert google_during("LAST_MONTH", today) == DateRange(date(2024, 5, 1), date(2024, 5, 31))
    assert google_during("LAST_WEEK_MON_SUN", today) == DateRange(date(2024, 5, 27), date(2024, 6, 2))
    assert google_during("LAST_BUSINESS_WEEK", today) == DateRange(date(2024, 5, 27), date(2024, 5, 31))
    assert google_during("LAST_90_DAYS", today) is None  # not a GAQL constant
    assert meta_preset("last_90d", today) == DateRange(date(2024, 3, 7), date(2024, 6, 4))
    assert meta_preset("this_month", today) == DateRange(date(2024, 6, 1), today)
    assert meta_preset("last_5d", today) is None
