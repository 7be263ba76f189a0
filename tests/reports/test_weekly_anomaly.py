"""Weekly anomaly: a spike day is flagged, a normal week is not, and the band is explained."""

from __future__ import annotations

from typing import Any

import pytest

from deneva.reports import Band, ReportInputError, weekly_anomaly
from deneva.reports.inputs import CampaignDay
from tests.reports.factories import TODAY, ago, day, dump

HISTORY = range(1, 36)  # the last 7 days and 4 baseline weeks


def steady(campaign_id: str = "c1", changes: dict[int, dict[str, Any]] | None = None) -> list[CampaignDay]:
    """Every day 100 spent, 50 clicks, 5 conversions; `changes` maps days ago to changed fields."""
    rows = []
    for n in HISTORY:
        fields = {"cost": 100.0, "clicks": 50, "conversions": 5.0, **(changes or {}).get(n, {})}
        if fields.get("skip"):
            continue
        rows.append(day(ago(n), campaign_id, **fields))
    return rows


def find(data: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [a for a in data["anomalies"] if all(a.get(k) == v for k, v in match.items())]


def test_a_normal_week_is_not_flagged() -> None:
    # Some noise within +-5 % of the usual numbers.
    wobble = {n: {"cost": 100.0 + (n * 37 % 11) - 5, "clicks": 50 + n % 5 - 2} for n in HISTORY}
    data = dump(weekly_anomaly(steady(changes=wobble), TODAY))
    assert data["anomalies"] == [] and data["anomaly_count"] == 0
    assert [w["status"] for w in data["account_week"]] == ["within"] * 4
    assert data["series_checked"] == 2  # the account and c1
    assert data["window"] == {"start": "2024-06-08", "end": "2024-06-14", "days": 7}
    assert data["baseline"]["start"] == "2024-05-11" and data["baseline"]["end"] == "2024-06-07"
    assert data["summary"] == (
        "No metric outside its band in the last 7 days (2024-06-08 to 2024-06-14, "
        "4-week same weekday median +- 3 MAD)."
    )


def test_a_spike_day_is_flagged_with_direction_and_magnitude() -> None:
    data = dump(weekly_anomaly(steady(changes={3: {"cost": 400.0}}), TODAY))
    (spend,) = find(data, scope="account", metric="spend", granularity="day")
    assert spend == {
        "scope": "account",
        "metric": "spend",
        "granularity": "day",
        "direction": "up",
        "impact": "neutral",
        "days_outside": 1,
        "dates": ["2024-06-12"],
        "worst_date": "2024-06-12",
        "value": 400.0,
        "expected": 100.0,
        "low": 80.0,  # the band: the 20 % floor, since the same weekdays never varied
        "high": 120.0,
        "deviation_pct": 300.0,
        "band_multiples": 15.0,
    }
    (cpa,) = find(data, scope="account", metric="cpa", granularity="day")
    assert (cpa["value"], cpa["expected"], cpa["direction"], cpa["impact"]) == (80.0, 20.0, "up", "bad")
    # The week: 1000 spent against 700 +- 140.
    (week,) = find(data, scope="account", metric="spend", granularity="week")
    assert (week["value"], week["expected"], week["low"], week["high"]) == (1000.0, 700.0, 560.0, 840.0)
    assert data["account_week"][0]["status"] == "above"
    assert find(data, metric="clicks") == [] and find(data, metric="conversions") == []
    # The same anomalies for c1, after the account's.
    assert {a["scope"] for a in data["anomalies"][:4]} == {"account"}
    assert len(find(data, scope="campaign", campaign_id="c1")) == 4
    assert data["anomalies_up"] == 8 and data["anomalies_by_metric"] == {
        "spend": 4,
        "clicks": 0,
        "conversions": 0,
        "cpa": 4,
    }
    assert data["summary"].startswith("8 anomalies in the last 7 days (2024-06-08 to 2024-06-14): account ")
    assert "account spend up on 2024-06-12: 400.00 vs expected 100.00 (+300.0%)" in data["summary"]


def test_a_stopped_campaign_is_one_grouped_anomaly() -> None:
    rows = steady("c1") + steady("c2", {n: {"skip": True} for n in (1, 2, 3)})
    data = dump(weekly_anomaly(rows, TODAY))
    (down,) = find(data, campaign_id="c2", metric="spend", granularity="day")
    assert down["direction"] == "down" and down["days_outside"] == 3
    assert down["dates"] == ["2024-06-12", "2024-06-13", "2024-06-14"]
    assert (down["value"], down["deviation_pct"]) == (0.0, -100.0)
    (clicks,) = find(data, campaign_id="c2", metric="clicks", granularity="day")
    assert (clicks["days_outside"], clicks["impact"]) == (3, "bad")
    # 0 conversions on a day that usually has 5 is within count noise (5 +- 3 x sqrt(5)).
    assert find(data, campaign_id="c2", metric="conversions") == []


def test_weekday_seasonality_is_not_an_anomaly() -> None:
    weekends = {n: {"cost": 50.0} for n in HISTORY if ago(n).weekday() >= 5}
    rows = steady(changes=weekends)
    assert dump(weekly_anomaly(rows, TODAY))["anomaly_count"] == 0
    pooled = dump(weekly_anomaly(rows, TODAY, Band(by_weekday=False)))
    weekend = find(pooled, scope="account", metric="spend", granularity="day")
    assert weekend[0]["dates"] == ["2024-06-08", "2024-06-09"] and weekend[0]["direction"] == "down"


def test_std_band_flags_the_spike_too() -> None:
    data = dump(weekly_anomaly(steady(changes={3: {"cost": 400.0}}), TODAY, Band(method="std", k=2.0)))
    assert find(data, scope="account", metric="spend", granularity="day")[0]["dates"] == ["2024-06-12"]
    assert data["baseline"]["description"] == "4-week same weekday mean +- 2 std"


def test_no_daily_cpa_from_a_handful_of_conversions() -> None:
    # One conversion a day, then a day with 2 and 4x the spend: a day's CPA from 1-2 conversions is noise.
    changes = {n: {"conversions": 1.0} for n in HISTORY} | {3: {"cost": 400.0, "conversions": 2.0}}
    data = dump(weekly_anomaly(steady(changes=changes), TODAY))
    assert find(data, scope="account", metric="spend", granularity="day")
    assert find(data, metric="cpa", granularity="day") == []
    # The week has 8 conversions, enough for a CPA: 1000 / 8 against 100 +- 20.
    (week,) = find(data, scope="account", metric="cpa", granularity="week")
    assert (week["value"], week["expected"], week["direction"]) == (125.0, 100.0, "up")


def test_new_and_small_campaigns() -> None:
    rows = steady("big")
    rows += [day(ago(n), "new", cost=300.0) for n in (1, 2)]
    rows += [day(ago(n), "tiny", cost=1.0, conversions=0.0) for n in HISTORY]
    data = dump(weekly_anomaly(rows, TODAY))
    assert data["new_campaigns"] == [{"campaign_id": "new", "campaign_name": "Campaign new", "cost": 600.0}]
    assert data["campaigns_skipped_small"] == 1
    assert find(data, campaign_id="new") == [] and find(data, campaign_id="tiny") == []
    assert "1 new campaign(s) without history." in data["summary"]


def test_too_little_history() -> None:
    data = dump(weekly_anomaly(steady(changes={n: {"skip": True} for n in range(12, 36)}), TODAY))
    assert data["has_data"] is True and data["series_checked"] == 0
    assert data["series_insufficient_history"] == 2
    assert data["summary"].startswith("Not enough history before 2024-06-08 to draw a band")
    assert [w["status"] for w in data["account_week"]] == ["insufficient_history"] * 4
    assert data["account_week"][0]["value"] == 700.0  # the week's total is still reported


def test_a_single_day_and_empty_input() -> None:
    one = dump(weekly_anomaly([day(ago(1), conversions=0.0)], TODAY))
    assert one["has_data"] is True and one["anomalies"] == []
    assert one["account_week"][3] == {
        "metric": "cpa",
        "value": None,
        "expected": None,
        "low": None,
        "high": None,
        "status": "no_value",
        "deviation_pct": None,
    }
    empty = dump(weekly_anomaly([], TODAY))
    assert empty["has_data"] is False
    assert empty["summary"] == "No data for this period (2024-06-08 to 2024-06-14)."


def test_rows_from_today_and_before_the_baseline_are_ignored() -> None:
    rows = [*steady(), day(TODAY, cost=10_000.0), day(ago(60), cost=10_000.0)]
    assert dump(weekly_anomaly(rows, TODAY))["anomaly_count"] == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "zscore"}, "band.method"),
        ({"k": 0}, "band.k"),
        ({"weeks": 0}, "band.weeks"),
        ({"min_points": 1}, "band.min_points"),
        ({"min_relative_width": -0.1}, "band.min_relative_width"),
    ],
)
def test_band_is_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ReportInputError, match=f"field '{field}'"):
        Band(**kwargs)


def test_min_campaign_share_is_checked() -> None:
    with pytest.raises(ReportInputError, match="field 'min_campaign_share'"):
        weekly_anomaly([], TODAY, min_campaign_share=2.0)
