"""TikTok adapter against the sandbox: campaign days in 30-day slices, page by page."""

from __future__ import annotations

import math
from collections import Counter
from datetime import date
from itertools import pairwise

import pytest

from deneva.adapters import Credentials, adapters_for
from deneva.adapters.base import Platform
from deneva.adapters.tiktok import TikTokAds, slices
from tests.adapters import truth
from tests.adapters.conftest import (
    ACCOUNTS,
    TIKTOK_TOKEN,
    FakeClock,
    Sandbox,
    assert_schema,
    creds,
    fetch_error,
    request,
    sandbox_config,
)


@pytest.mark.parametrize("date_range", ["last_7_days", "last_90_days"])
async def test_campaign_days_match_the_account_day_by_day(
    adapters: dict[str, Platform], date_range: str
) -> None:
    data = await adapters["tiktok"].fetch_report(
        creds("tiktok"), request("tiktok", "account_health", date_range)
    )
    expected = truth.campaign_days("tiktok", date_range, "account_health")
    assert_schema("campaign_day", data.rows)
    assert {(r["date"], r["campaign_id"]) for r in data.rows} == set(expected)
    assert data.fetched_rows == len(data.rows) == len(expected)
    assert data.currency == truth.account("tiktok").currency
    campaigns = {c.id: c for c in truth.account("tiktok").campaigns}
    for row in data.rows:
        m = expected[(row["date"], row["campaign_id"])]
        c = campaigns[row["campaign_id"]]
        assert (row["impressions"], row["clicks"]) == (m.impressions, m.clicks)
        assert row["cost"] == pytest.approx(m.cost_micros / 1e6, abs=0.006)
        assert row["conversions"] == round(m.conversions)
        assert row["conversion_value"] == pytest.approx(m.conversions_value, abs=0.006)
        assert (row["campaign_name"], row["campaign_type"], row["status"]) == (c.name, c.objective, c.status)
        assert row["daily_budget"] == pytest.approx(c.daily_budget)
        assert row["budget_lost_share"] is None


async def test_ninety_days_come_in_three_slices_read_page_by_page(sandbox: Sandbox, clock: FakeClock) -> None:
    tiktok = TikTokAds(sandbox_config(sandbox.url, clock, tiktok_page_size=10))
    data = await tiktok.fetch_report(creds("tiktok"), request("tiktok", "budget_optimizer", "last_90_days"))
    expected = truth.campaign_days("tiktok", "last_90_days", "budget_optimizer")
    assert len(data.rows) == len(expected)
    assert len({(r["date"], r["campaign_id"]) for r in data.rows}) == len(data.rows)
    start, end = truth.days("last_90_days")[0], truth.days("last_90_days")[-1]
    per_slice = Counter(
        next(
            n
            for n, (first, last) in enumerate(slices(start, end, 30))
            if first.isoformat() <= day <= last.isoformat()
        )
        for day, _ in expected
    )
    report_pages = sum(math.ceil(rows / 10) for rows in per_slice.values())
    assert len(per_slice) == 3 and report_pages > 3
    assert await sandbox.calls("tiktok", "report") == report_pages
    live = [c for c in truth.account("tiktok").campaigns if c.status != "REMOVED"]
    assert await sandbox.calls("tiktok", "campaigns") == math.ceil(len(live) / 10)


def test_slices_cover_the_range_without_gaps() -> None:
    start, end = date(2024, 3, 3), date(2024, 5, 31)
    parts = slices(start, end, 30)
    assert [(b - a).days + 1 for a, b in parts] == [30, 30, 30]
    assert parts[0][0] == start and parts[-1][1] == end
    assert all((after[0] - before[1]).days == 1 for before, after in pairwise(parts))
    assert slices(start, start, 30) == [(start, start)]


async def test_refresh_token_hands_back_the_same_token(adapters: dict[str, Platform]) -> None:
    grant = await adapters["tiktok"].refresh_token(creds("tiktok"))
    assert (grant.access_token, grant.expires_at) == (TIKTOK_TOKEN, None)
    assert TIKTOK_TOKEN not in repr(grant)


async def test_a_revoked_token_is_token_revoked(sandbox: Sandbox, adapters: dict[str, Platform]) -> None:
    await sandbox.token_action("revoke", "tiktok", TIKTOK_TOKEN)
    error = await fetch_error(adapters["tiktok"], creds("tiktok"), request("tiktok"))
    assert (error.code, error.status) == ("token_revoked", 200)
    assert "40105" in error.message


async def test_missing_token_is_token_revoked(sandbox: Sandbox, adapters: dict[str, Platform]) -> None:
    error = await fetch_error(
        adapters["tiktok"], Credentials("tiktok", ACCOUNTS["tiktok"]), request("tiktok")
    )
    assert error.code == "token_revoked"
    assert await sandbox.calls("tiktok", "report") == 0


async def test_an_unknown_advertiser_is_not_found(adapters: dict[str, Platform]) -> None:
    account = "not-an-advertiser"
    error = await fetch_error(
        adapters["tiktok"], creds("tiktok", account), request("tiktok", account_id=account)
    )
    assert error.code == "not_found"
    assert "40001" in error.message


async def test_a_retired_version_is_invalid_request_naming_the_key(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    tiktok = adapters_for(sandbox_config(sandbox.url, clock, tiktok_api_version="v1.2"))["tiktok"]
    error = await fetch_error(tiktok, creds("tiktok"), request("tiktok"))
    assert (error.code, error.status) == ("invalid_request", 404)
    assert "TikTok Business API v1.2 is not served" in error.message
    assert "tiktok_api_version (DENEVA_TIKTOK_API_VERSION) to v1.3" in error.message
