"""Account health: hand-computed totals, week-over-week deltas, movers and flags."""

from __future__ import annotations

import pytest

from deneva.reports import ReportInputError, account_health
from deneva.reports.inputs import CampaignDay
from tests.reports.factories import TODAY, ago, day, dump


def two_weeks() -> list[CampaignDay]:
    """c1 spends 30 % more and converts 40 % less in the last week; c2 holds steady."""
    rows = []
    for n in range(1, 15):
        last_week = n <= 7
        cost, conversions, value = (130.0, 3.0, 300.0) if last_week else (100.0, 5.0, 500.0)
        rows.append(day(ago(n), "c1", name="Search", cost=cost, conversions=conversions, value=value))
        rows.append(
            day(
                ago(n),
                "c2",
                name="Brand",
                impressions=200,
                clicks=20,
                cost=20.0,
                conversions=2.0,
                value=200.0,
            )
        )
    return rows


def test_week_over_week_deltas_by_hand() -> None:
    data = dump(account_health(two_weeks(), TODAY, 7))
    assert data["period"] == {"start": "2024-06-08", "end": "2024-06-14", "days": 7}
    assert data["previous_period"] == {
        "start": "2024-06-01",
        "end": "2024-06-07",
        "days": 7,
        "coverage": "complete",
    }
    assert data["history_start"] == "2024-06-01"
    # Last week: cost 7 x 150 = 1050, 35 conversions, value 3500; the week before: 840, 49, 4900.
    totals = data["totals"]
    assert (totals["cost"], totals["conversions"], totals["conversion_value"]) == (1050.0, 35.0, 3500.0)
    assert (totals["clicks"], totals["impressions"], totals["ctr"]) == (490, 8400, 0.0583)
    assert (totals["cpa"], totals["roas"]) == (30.0, 3.3333)
    assert data["previous_totals"]["cpa"] == 17.14
    wow = data["week_over_week"]["change_pct"]
    assert wow == {
        "spend": 25.0,
        "clicks": 0.0,
        "conversions": -28.57,
        "cpa": 75.0,
        "roas": -42.86,
        "ctr": 0.0,
    }
    assert data["period_change_pct"] == wow  # a 7-day period is the week


def test_flags_spend_up_conversions_down_and_roas_down() -> None:
    data = dump(account_health(two_weeks(), TODAY, 7))
    flags = [(f["severity"], f["code"], f["scope"], f.get("campaign_id")) for f in data["flags"]]
    assert flags == [
        ("high", "spend_up_conversions_down", "account", None),
        ("high", "spend_up_conversions_down", "campaign", "c1"),
        ("medium", "roas_down", "account", None),
        ("medium", "roas_down", "campaign", "c1"),
    ]
    assert data["flags_total"] == 4
    assert data["flags"][0]["message"] == "Account: spend +25.0% while conversions -28.6% week over week"
    assert "4 flags: Account: spend +25.0% while conversions -28.6%" in data["summary"]


def test_top_movers_rank_only_campaigns_that_moved() -> None:
    data = dump(account_health(two_weeks(), TODAY, 7))
    assert data["campaign_count"] == 2
    (mover,) = data["top_movers"]  # c2 did not move
    assert mover == {
        "campaign_id": "c1",
        "campaign_name": "Search",
        "status": "ENABLED",
        "cost": 910.0,
        "cost_prior": 700.0,
        "cost_change_pct": 30.0,
        "conversions": 21.0,
        "conversions_prior": 35.0,
        "conversions_change_pct": -40.0,
        "cpa": 43.33,
        "cpa_prior": 20.0,
        "roas": 2.3077,
        "roas_prior": 5.0,
    }


def test_a_steady_account_has_no_flags() -> None:
    rows = [day(ago(n), "c1") for n in range(1, 15)]
    data = dump(account_health(rows, TODAY, 7))
    assert data["flags"] == [] and data["top_movers"] == []
    assert data["summary"].endswith("No flags.")


def test_longer_period_windows_end_yesterday_and_skip_today() -> None:
    rows = [day(ago(n), "c1") for n in range(0, 61)]  # includes today's partial row
    data = dump(account_health(rows, TODAY, 30))
    assert data["period"] == {"start": "2024-05-16", "end": "2024-06-14", "days": 30}
    assert data["previous_period"] == {
        "start": "2024-04-16",
        "end": "2024-05-15",
        "days": 30,
        "coverage": "complete",
    }
    assert data["totals"]["cost"] == 3000.0
    assert data["previous_totals"]["cost"] == 3000.0
    assert data["week_over_week"]["last_7_days"]["totals"]["cost"] == 700.0
    assert data["period_change_pct"]["spend"] == 0.0


def test_too_few_conversions_to_flag() -> None:
    # Spend +20 %, conversions 2 -> 1 a week: CPA and conversion swings that small are noise.
    rows = [day(ago(n), cost=12.0 if n <= 7 else 10.0, conversions=0.0) for n in range(1, 15)]
    rows += [day(ago(2), "c1", cost=0.0, conversions=1.0), day(ago(9), "c1", cost=0.0, conversions=2.0)]
    data = dump(account_health(rows, TODAY, 7))
    assert data["week_over_week"]["change_pct"]["conversions"] == -50.0
    assert data["flags"] == []


def test_spend_stopped_and_conversions_stopped() -> None:
    rows = [day(ago(n), "c1", cost=100.0) for n in range(8, 15)]  # c1 stopped a week ago
    rows += [day(ago(n), "c2", cost=100.0, conversions=0.0 if n <= 7 else 4.0) for n in range(1, 15)]
    data = dump(account_health(rows, TODAY, 7))
    codes = {(f["code"], f.get("campaign_id")) for f in data["flags"]}
    assert ("spend_stopped", "c1") in codes
    assert ("conversions_stopped", "c2") in codes
    assert ("conversions_stopped", None) in codes  # c1 stopped and c2 no longer converts
    assert data["totals"]["conversions"] == 0.0
    assert data["totals"]["cpa"] is None and data["week_over_week"]["change_pct"]["cpa"] is None


def test_empty_input_is_a_clear_no_data_result() -> None:
    data = dump(account_health([], TODAY, 30))
    assert data["has_data"] is False
    assert data["summary"] == "No data for this period (2024-05-16 to 2024-06-14) or the one before."
    assert data["totals"]["cost"] == 0.0 and data["totals"]["cpa"] is None and data["totals"]["ctr"] is None
    assert data["flags"] == [] and data["top_movers"] == []
    assert all(v is None for v in data["week_over_week"]["change_pct"].values())


def test_a_single_day_with_no_clicks() -> None:
    data = dump(account_health([day(ago(1), clicks=0, impressions=0, conversions=0.0)], TODAY, 7))
    assert data["has_data"] is True
    assert data["totals"]["cpc"] is None and data["totals"]["ctr"] is None and data["totals"]["cpa"] is None
    assert data["week_over_week"]["change_pct"]["spend"] is None  # nothing to compare with
    assert [f["code"] for f in data["flags"]] == ["partial_week", "no_previous_period"]
    assert data["week_over_week"]["last_7_days"]["days_with_data"] == 1


def test_an_account_younger_than_the_previous_period_says_so_and_compares_nothing() -> None:
    # 40 days of history for a 30-day range: the previous 30 days have 10 days of data.
    rows = [day(ago(n), "c1", cost=10.0 if n > 30 else 20.0) for n in range(1, 41)]
    data = dump(account_health(rows, TODAY, 30))
    assert data["previous_period"]["coverage"] == "partial"
    assert data["previous_totals"]["cost"] == 100.0  # the days there are, shown as such
    assert all(v is None for v in data["period_change_pct"].values())
    (flag,) = [f for f in data["flags"] if f["code"] == "previous_period_partial"]
    assert flag["message"] == (
        "The previous 30 days have data from 2024-05-06 only (10 of 30 days): no period-over-period change"
    )
    assert "no comparison with the previous 30 days: the account's data starts 2024-05-06" in data["summary"]
    # The two weeks are covered: week over week is made.
    assert data["week_over_week"]["prior_7_days"]["coverage"] == "complete"
    assert data["week_over_week"]["change_pct"]["spend"] == 0.0


def test_an_account_with_no_data_before_the_period_has_no_previous_period() -> None:
    rows = [day(ago(n), "c1") for n in range(1, 31)]
    data = dump(account_health(rows, TODAY, 30))
    assert data["previous_period"]["coverage"] == "none"
    codes = [f["code"] for f in data["flags"]]
    assert "no_previous_period" in codes and "partial_week" not in codes
    assert data["period_change_pct"]["spend"] is None


def test_a_week_old_account_has_no_week_over_week_deltas_or_flags() -> None:
    # Spend doubled in a week-old account: with no prior week nothing may be flagged as a change.
    rows = [day(ago(n), "c1", cost=10.0 * (9 - n)) for n in range(1, 9)]
    data = dump(account_health(rows, TODAY, 7))
    assert data["week_over_week"]["prior_7_days"]["coverage"] == "partial"
    assert all(v is None for v in data["week_over_week"]["change_pct"].values())
    assert [f["code"] for f in data["flags"]] == ["partial_week", "previous_period_partial"]
    assert "No week-over-week comparison: the account's data starts 2024-06-07." in data["summary"]


@pytest.mark.parametrize("bad", [0, -1, 367, True])
def test_range_days_is_checked(bad: int) -> None:
    with pytest.raises(ReportInputError, match="field 'range_days'"):
        account_health([], TODAY, bad)
