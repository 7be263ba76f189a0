"""Portfolio overview: accounts side by side, totals per platform and per currency (never
across currencies), period-over-period change only where every account has a previous period."""

from __future__ import annotations

from deneva.reports._common import Totals
from deneva.reports.portfolio import AccountFigures, portfolio, totals_from_json


def account(
    platform: str,
    account_id: str,
    cost: float,
    conversions: float,
    previous_cost: float,
    *,
    currency: str | None = "USD",
    coverage: str = "complete",
    value: float = 0.0,
) -> AccountFigures:
    return AccountFigures(
        platform,
        account_id,
        healthy=True,
        last_error_code=None,
        totals=Totals(1000, 100, cost, conversions, value),
        previous_totals=Totals(1000, 100, previous_cost, conversions, value),
        coverage=coverage,
        currency=currency,
        fetched_at="2024-06-14T10:00:00+00:00",
        expires_at="2024-06-14T11:00:00+00:00",
    )


def test_totals_are_per_currency_and_never_summed_across_currencies() -> None:
    data = portfolio(
        [
            account("google", "1", 100.0, 10.0, 80.0, value=400.0),
            account("meta", "2", 50.0, 5.0, 40.0, value=100.0),
            account("tiktok", "3", 9000.0, 3.0, 9000.0, currency="JPY"),
        ],
        "last_7_days",
    ).to_json()
    blended = {g["currency"]: g for g in data["blended"]}
    assert set(blended) == {"JPY", "USD"}
    usd = blended["USD"]
    assert (usd["accounts"], usd["spend"], usd["conversions"], usd["cpa"]) == (2, 150.0, 15.0, 10.0)
    assert usd["roas"] == 3.3333 and usd["change_pct"]["spend"] == 25.0  # 150 vs 120
    assert blended["JPY"]["spend"] == 9000.0 and blended["JPY"]["change_pct"]["spend"] == 0.0
    assert [g["currency"] for g in data["by_platform"]["tiktok"]] == ["JPY"]
    assert data["by_platform"]["google"][0]["spend"] == 100.0
    assert "USD 150.00 spend (+25.0% vs previous period)" in data["summary"]
    assert "JPY 9,000.00 spend" in data["summary"]


def test_a_total_with_an_account_lacking_its_previous_period_makes_no_change() -> None:
    data = portfolio(
        [
            account("google", "1", 100.0, 10.0, 80.0),
            account("meta", "2", 50.0, 5.0, 10.0, coverage="partial"),
        ],
        "last_90_days",
    ).to_json()
    (usd,) = data["blended"]
    assert usd["spend"] == 150.0 and usd["previous"] is None
    assert all(v is None for v in usd["change_pct"].values())
    assert usd["accounts_without_previous_period"] == 1
    meta = next(a for a in data["accounts"] if a["platform"] == "meta")
    assert meta["previous_period_coverage"] == "partial" and meta["change_pct"]["spend"] is None
    google = next(a for a in data["accounts"] if a["platform"] == "google")
    assert google["change_pct"]["spend"] == 25.0


def test_pending_and_unknown_currency_accounts_are_shown_apart() -> None:
    pending = AccountFigures("tiktok", "9", healthy=False, last_error_code="rate_limited")
    data = portfolio(
        [account("google", "1", 100.0, 10.0, 80.0, currency=None), pending], "last_30_days"
    ).to_json()
    assert [g["currency"] for g in data["blended"]] == ["unknown"]
    assert data["pending_accounts"] == 1 and data["by_platform"]["tiktok"] == []
    (row,) = [a for a in data["accounts"] if a["status"] == "pending"]
    assert (row["healthy"], row["last_error_code"]) == (False, "rate_limited") and "spend" not in row
    assert "1 account pending (refresh queued). 1 account unhealthy." in data["summary"]


def test_no_account_and_malformed_totals() -> None:
    data = portfolio([], "last_7_days").to_json()
    assert data["has_data"] is False and data["summary"] == "No ad account is connected for this tenant."
    assert totals_from_json({"cost": "x"}) is None and totals_from_json(None) is None
