"""Budget optimizer: a known budget-limited campaign with a good CPA gets budget from a poor one."""

from __future__ import annotations

import math

import pytest

from deneva.reports import ReportInputError, budget_optimizer
from deneva.reports.inputs import CampaignDay
from tests.reports.factories import ago, day, dump


def account(
    *,
    a_lost: float | None = 0.2,
    a_cost: float = 100.0,
    b_budget: float = 300.0,
    b_status: str = "ENABLED",
    c_conversions: float = 2.5,
) -> list[CampaignDay]:
    """Ten days: A is capped by its budget at CPA 20, B has budget to spare at CPA 100, C sits at CPA 40."""
    rows = []
    for n in range(1, 11):
        rows.append(day(ago(n), "A", name="Brand", cost=a_cost, conversions=5.0, budget=100.0, lost=a_lost))
        rows.append(
            day(
                ago(n),
                "B",
                name="Display",
                status=b_status,
                cost=100.0,
                conversions=1.0,
                budget=b_budget,
                lost=0.0,
            )
        )
        rows.append(
            day(ago(n), "C", name="Generic", cost=100.0, conversions=c_conversions, budget=200.0, lost=0.0)
        )
    return rows


def test_moves_budget_from_poor_unused_to_limited_good() -> None:
    data = dump(budget_optimizer(account()))
    # Account CPA: 3000 / 85 = 35.29. A (CPA 20) is limited; B (100) and C (40) have unused budget.
    assert (data["benchmark_cpa"], data["benchmark_source"]) == (35.29, "account_cpa")
    (limited,) = data["budget_limited"]
    assert limited["campaign_id"] == "A" and limited["good_cpa"] is True
    assert (limited["budget_lost_share"], limited["capped_day_share"]) == (0.2, 1.0)
    # It lost 20 % to budget: 100 x 0.2 / 0.8 = 25 more a day.
    assert limited["suggested_daily_increase"] == 25.0
    # Donors keep 20 % headroom over average spend: B 300 - 120, C 200 - 120; worst CPA first.
    assert [(d["campaign_id"], d["releasable_daily"]) for d in data["donors"]] == [("B", 180.0), ("C", 80.0)]
    assert data["moves"] == [
        {
            "from_campaign_id": "B",
            "from_campaign_name": "Display",
            "from_cpa": 100.0,
            "to_campaign_id": "A",
            "to_campaign_name": "Brand",
            "to_cpa": 20.0,
            "daily_amount": 25.0,
            "monthly_amount": 750.0,
            "expected_extra_conversions_per_month": 37.5,  # 750 / 20
        }
    ]
    assert (data["moved_daily"], data["expected_extra_conversions_per_month"]) == (25.0, 37.5)
    assert data["unfunded_increases"] == [] and data["reasons"] == []
    assert data["summary"] == (
        "1 budget-limited campaign beat the account CPA 35.29. Move 25.00/day in 1 move from campaigns with "
        "unused budget for about 37.5 more conversions a month; largest: 25.00/day from 'Display' to 'Brand'."
    )


def test_a_move_draws_on_several_donors() -> None:
    data = dump(budget_optimizer(account(a_lost=0.8, b_budget=130.0)))
    # A's need: 100 x 0.8 / 0.2 = 400, capped at half its budget: 50. B gives 10, C gives the other 40.
    assert [(m["from_campaign_id"], m["daily_amount"]) for m in data["moves"]] == [("B", 10.0), ("C", 40.0)]
    assert data["expected_extra_conversions_per_month"] == 75.0  # 50 x 30 / 20


def test_limited_by_spending_the_whole_budget_on_most_days() -> None:
    rows = [r for r in account(a_lost=None) if r.campaign_id != "A"]
    for n in range(1, 11):
        rows.append(day(ago(n), "A", cost=96.0 if n <= 6 else 50.0, conversions=4.0, budget=100.0))
    data = dump(budget_optimizer(rows))
    (limited,) = data["budget_limited"]
    assert limited["capped_day_share"] == 0.6 and limited["budget_lost_share"] is None
    assert limited["suggested_daily_increase"] == 20.0  # 20 % of its budget without a lost share


def test_target_cpa_can_disqualify_every_campaign() -> None:
    data = dump(budget_optimizer(account(), target_cpa=15.0))
    assert (data["benchmark_cpa"], data["benchmark_source"]) == (15.0, "target_cpa")
    assert data["moves"] == []
    assert data["reasons"] == [
        "1 budget-limited campaign, but none has a CPA at or below 15.00 with at least 3 conversions."
    ]
    assert data["summary"].startswith(
        "No budget moves suggested (target CPA 15.00): 1 budget-limited campaign"
    )


def test_nothing_budget_limited() -> None:
    data = dump(budget_optimizer(account(a_lost=0.05, a_cost=90.0)))
    assert data["budget_limited"] == [] and data["moves"] == []
    assert data["reasons"][0].startswith("No active campaign is budget-limited")


def test_no_donor_leaves_the_increase_unfunded() -> None:
    # C now converts at CPA 25, better than the account's 30, so it gives nothing; B is paused.
    data = dump(budget_optimizer(account(b_status="PAUSED", c_conversions=4.0)))
    assert data["donors"] == [] and data["moves"] == []
    assert data["unfunded_increases"] == [
        {
            "campaign_id": "A",
            "campaign_name": "Brand",
            "daily_amount": 25.0,
            "expected_extra_conversions_per_month": 37.5,
        }
    ]
    assert "has unused budget to give" in data["reasons"][0]
    assert "Consider raising the budgets of 1 campaign by 25.00/day in all." in data["summary"]


def test_no_conversions_means_no_benchmark() -> None:
    rows = [day(ago(n), "A", conversions=0.0, budget=100.0, lost=0.5) for n in range(1, 4)]
    data = dump(budget_optimizer(rows))
    assert data["benchmark_cpa"] is None and data["account"]["cpa"] is None
    assert data["reasons"][0].startswith("The account has no conversions")


def test_empty_input() -> None:
    data = dump(budget_optimizer([]))
    assert data["has_data"] is False and data["summary"] == "No campaign data for this period."
    assert data["period"] is None and data["moves"] == []


@pytest.mark.parametrize("bad", [0.0, -5.0, math.nan, math.inf])
def test_target_cpa_is_checked(bad: float) -> None:
    with pytest.raises(ReportInputError, match="field 'target_cpa'"):
        budget_optimizer([], target_cpa=bad)


def test_thresholds_are_checked() -> None:
    with pytest.raises(ReportInputError, match="field 'lost_share_threshold'"):
        budget_optimizer([], lost_share_threshold=0.0)
    with pytest.raises(ReportInputError, match="field 'min_conversions'"):
        budget_optimizer([], min_conversions=-1.0)
