"""Input rows: adapters' dicts map onto them, and anything malformed fails loudly and precisely."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import attrs
import pytest

from deneva.errors import DenevaError
from deneva.reports.inputs import (
    AssetGroupRow,
    AuctionRow,
    CampaignDay,
    KeywordRow,
    ReportInputError,
    SearchTermRow,
    rows_from_dicts,
)

_DROP = object()  # a key to leave out


def campaign_dict(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "date": "2024-06-14",
        "campaign_id": "123",
        "campaign_name": "Brand",
        "status": "ENABLED",
        "impressions": 1000,
        "clicks": 50,
        "cost": 12.5,
        "conversions": 2.5,
        "conversion_value": 100,
        "daily_budget": 50.0,
        "budget_lost_share": 0.1,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


def test_campaign_day_from_an_adapter_dict() -> None:
    row = CampaignDay.from_dict(campaign_dict())
    assert row == CampaignDay(
        date(2024, 6, 14), "123", "Brand", "ENABLED", 1000, 50, 12.5, 2.5, 100.0, 50.0, 0.1
    )
    assert isinstance(row.conversion_value, float)


def test_lenient_where_platforms_differ() -> None:
    row = CampaignDay.from_dict(
        campaign_dict(
            date=date(2024, 6, 14), campaign_id=123, daily_budget=_DROP, budget_lost_share=None, extra=1
        )
    )
    assert row.campaign_id == "123"
    assert row.daily_budget is None and row.budget_lost_share is None


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"clicks": _DROP}, "clicks", "is missing"),
        ({"clicks": "50"}, "clicks", "must be an integer, got str"),
        ({"clicks": 5.0}, "clicks", "must be an integer, got float"),
        ({"clicks": True}, "clicks", "must be an integer, got bool"),
        ({"clicks": -1}, "clicks", "must be between 0"),
        ({"cost": "12.5"}, "cost", "must be a number, got str"),
        ({"cost": math.nan}, "cost", "must be a finite number"),
        ({"cost": math.inf}, "cost", "must be a finite number"),
        ({"cost": -0.01}, "cost", "must be between 0"),
        ({"cost": 1e13}, "cost", "must be between 0"),
        ({"budget_lost_share": 1.5}, "budget_lost_share", "between 0 and 1"),
        ({"date": "14/06/2024"}, "date", "must be an ISO date"),
        ({"date": datetime(2024, 6, 14, 12)}, "date", "must be a date, got datetime"),
        ({"campaign_id": ""}, "campaign_id", "1 to 64 characters"),
        ({"campaign_id": None}, "campaign_id", "must be a string, got NoneType"),
        ({"campaign_name": 7}, "campaign_name", "must be a string, got int"),
        ({"campaign_id": "12\x0034"}, "campaign_id", "must not contain control characters"),
        ({"campaign_id": "1234\n"}, "campaign_id", "must not contain control characters"),
        ({"campaign_id": "12\x9f"}, "campaign_id", "must not contain control characters"),
        ({"campaign_name": "Brand\x00"}, "campaign_name", "must not contain NUL characters"),
        ({"status": "\x00"}, "status", "must not contain NUL characters"),
    ],
)
def test_bad_fields_are_named_with_the_row_index(changes: dict[str, Any], field: str, reason: str) -> None:
    good = campaign_dict()
    with pytest.raises(ReportInputError) as caught:
        rows_from_dicts(CampaignDay, [good, good, campaign_dict(**changes)])
    error = caught.value
    assert (error.index, error.field) == (2, field)
    assert reason in str(error)
    assert str(error).startswith(f"row 2, field {field!r}: ")
    assert isinstance(error, DenevaError) and isinstance(error, ValueError)


def test_a_row_that_is_not_a_mapping() -> None:
    with pytest.raises(ReportInputError, match=r"^row 1: must be a mapping \(dict\), got list$"):
        rows_from_dicts(CampaignDay, [campaign_dict(), [1, 2]])  # type: ignore[list-item]


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ReportInputError, match="field 'cost': must be a finite number"):
        CampaignDay(date(2024, 6, 14), "1", "x", "ENABLED", 1, 1, math.nan, 0.0, 0.0)
    with pytest.raises(ReportInputError, match="field 'quality_score': must be between 1 and 10, got 11"):
        KeywordRow("kw", "EXACT", "1", "2", 11, 1, 1, 1.0, 0.0)


def test_keyword_quality_score_must_be_present_but_may_be_null() -> None:
    base = {
        "keyword": "crm",
        "match_type": "EXACT",
        "campaign_id": "1",
        "ad_group_id": "2",
        "impressions": 10,
        "clicks": 1,
        "cost": 1.5,
        "conversions": 0,
    }
    assert KeywordRow.from_dict({**base, "quality_score": None}).quality_score is None
    assert KeywordRow.from_dict({**base, "quality_score": 7}).quality_score == 7
    with pytest.raises(ReportInputError, match="field 'quality_score': is missing"):
        KeywordRow.from_dict(base)


def test_auction_row_knows_the_account_itself() -> None:
    assert AuctionRow.from_dict({"domain": "You", "impression_share": 0.4}).is_account
    assert AuctionRow.from_dict({"domain": " you ", "impression_share": 0.4}).is_account
    assert AuctionRow.from_dict({"domain": "me.com", "impression_share": 0.4, "is_self": True}).is_account
    other = AuctionRow.from_dict({"domain": "rival.com", "impression_share": 0.4, "overlap_rate": 0.5})
    assert not other.is_account and other.position_above_rate is None
    with pytest.raises(ReportInputError, match="field 'is_self': must be a boolean"):
        AuctionRow.from_dict({"domain": "a.com", "impression_share": 0.4, "is_self": "yes"})


@pytest.mark.parametrize(
    "row",
    [
        CampaignDay(date(2024, 6, 14), "1", "x", "PAUSED", 1, 1, 1.0, 0.0, 0.0, None, 0.2),
        SearchTermRow("free crm", "1", "x", 10, 2, 3.5, 0.0, 0.0),
        KeywordRow("crm", "BROAD", "1", "2", None, 10, 1, 1.0, 0.0, "x"),
        AuctionRow("a.com", 0.3, 0.2, None, 0.1, 0.5),
        AssetGroupRow("9", "Shoes", "1", "PMax", "ENABLED", 10, 1, 2.0, 1.0, 10.0),
    ],
)
def test_rows_round_trip_through_dicts(row: Any) -> None:
    as_dict = attrs.asdict(row)
    as_dict.update({k: v.isoformat() for k, v in as_dict.items() if isinstance(v, date)})
    assert type(row).from_dict(as_dict) == row
