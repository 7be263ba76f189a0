"""Google Ads adapter against the sandbox: every report type, normalised, and lazy token refresh."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import attrs
import httpx
import pytest
import trio

from deneva import catalog
from deneva.adapters import Credentials, PlatformError, TokenGrant
from deneva.adapters.base import Platform
from deneva.adapters.google import GoogleAds, customer_id, gaql
from deneva.sandbox.state import SandboxConfig
from tests.adapters import truth
from tests.adapters.conftest import (
    ACCOUNTS,
    GOOGLE_REFRESH,
    TODAY,
    FakeClock,
    Sandbox,
    assert_no_secrets,
    assert_schema,
    creds,
    fetch_error,
    request,
    sandbox_config,
    start_sandbox,
)

CUSTOMER = ACCOUNTS["google"]


@pytest.mark.parametrize("date_range", ["last_7_days", "last_30_days", "last_90_days"])
async def test_campaign_days_match_the_account_day_by_day(
    adapters: dict[str, Platform], date_range: str
) -> None:
    data = await adapters["google"].fetch_report(
        creds("google"), request("google", "account_health", date_range)
    )
    expected = truth.campaign_days("google", date_range, "account_health")
    assert_schema("campaign_day", data.rows)
    assert {(r["date"], r["campaign_id"]) for r in data.rows} == set(expected)
    assert data.fetched_rows == len(data.rows) == len(expected)
    window = catalog.fetch_window("account_health", date_range, TODAY)
    assert (data.start_date, data.end_date) == (window.start, window.end)  # the previous period too
    assert data.currency == truth.account("google").currency
    assert data.api_calls == 2  # the token refresh and one searchStream
    assert data.refreshed is not None
    campaigns = {c.id: c for c in truth.account("google").campaigns}
    for row in data.rows:
        m = expected[(row["date"], row["campaign_id"])]
        c = campaigns[row["campaign_id"]]
        assert (row["impressions"], row["clicks"]) == (m.impressions, m.clicks)
        assert row["cost"] == pytest.approx(m.cost_micros / 1e6)
        assert row["conversions"] == pytest.approx(m.conversions, abs=0.01)
        assert row["conversion_value"] == pytest.approx(m.conversions_value, abs=0.01)
        assert (row["campaign_name"], row["status"], row["campaign_type"]) == (c.name, c.status, c.channel)
        assert row["daily_budget"] == pytest.approx(c.daily_budget)
        if c.channel == "SEARCH":
            assert row["budget_lost_share"] is not None and 0.0 <= row["budget_lost_share"] <= 1.0
        else:
            assert row["budget_lost_share"] is None
    assert data.rows == sorted(data.rows, key=lambda r: (r["date"], r["campaign_id"]))


async def test_each_campaign_report_reads_its_own_window_in_one_search(
    sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    # Budget optimizer: the range; weekly anomaly: the 4 weeks before the last 7 days too.
    for report_type in ("budget_optimizer", "weekly_anomaly"):
        before = await sandbox.calls("google", "searchStream")
        data = await adapters["google"].fetch_report(creds("google"), request("google", report_type))
        assert (data.report_type, data.schema) == (report_type, "campaign_day")
        expected = truth.campaign_days("google", "last_7_days", report_type)
        assert {(r["date"], r["campaign_id"]) for r in data.rows} == set(expected)
        assert await sandbox.calls("google", "searchStream") == before + 1
    assert len(truth.days("last_7_days", "weekly_anomaly")) == 35


async def test_search_terms_are_summed_over_the_range_costliest_first(adapters: dict[str, Platform]) -> None:
    data = await adapters["google"].fetch_report(
        creds("google"), request("google", "search_term_waste", "last_30_days")
    )
    expected = truth.search_terms("last_30_days")
    assert_schema("search_term", data.rows)
    assert {(r["campaign_id"], r["ad_group_id"], r["search_term"]) for r in data.rows} == set(expected)
    for row in data.rows:
        m = expected[(row["campaign_id"], row["ad_group_id"], row["search_term"])]
        assert (row["impressions"], row["clicks"]) == (m.impressions, m.clicks)
        assert row["cost"] == pytest.approx(m.cost_micros / 1e6)
        assert row["match_type"] in ("EXACT", "PHRASE", "BROAD", "NEAR_EXACT", "NEAR_PHRASE")
    costs = [r["cost"] for r in data.rows]
    assert costs == sorted(costs, reverse=True)
    # The sandbox plants wasted terms: spend and never a conversion.
    assert any(r["cost"] > 0 and r["conversions"] == 0 for r in data.rows)


async def test_keywords_carry_their_quality_score(adapters: dict[str, Platform]) -> None:
    data = await adapters["google"].fetch_report(
        creds("google"), request("google", "quality_score", "last_30_days")
    )
    expected = truth.keywords("last_30_days")
    assert_schema("keyword", data.rows)
    assert {r["keyword_id"] for r in data.rows} == set(expected)
    for row in data.rows:
        score, m = expected[row["keyword_id"]]
        assert row["quality_score"] == score
        assert (row["impressions"], row["clicks"]) == (m.impressions, m.clicks)
        assert row["cost"] == pytest.approx(m.cost_micros / 1e6)
        if score is None:
            assert row["expected_ctr"] is None
        else:
            assert 1 <= score <= 10
            assert row["expected_ctr"] in ("BELOW_AVERAGE", "AVERAGE", "ABOVE_AVERAGE")


async def test_auction_insights_have_the_account_and_its_competitors(adapters: dict[str, Platform]) -> None:
    data = await adapters["google"].fetch_report(
        creds("google"), request("google", "auction_insights", "last_30_days")
    )
    assert_schema("auction", data.rows)
    assert {(r["campaign_id"], r["domain"]) for r in data.rows} == truth.auction_domains("last_30_days")
    for row in data.rows:
        assert row["is_self"] == (row["domain"] == "You")
        assert 0.0 <= row["impression_share"] <= 1.0
        if row["is_self"]:
            assert row["overlap_rate"] is None and row["outranking_share"] is None
        else:
            assert row["overlap_rate"] is not None and 0.0 <= row["overlap_rate"] <= 1.0
    first_per_campaign: dict[str, dict[str, Any]] = {}
    for row in data.rows:
        first_per_campaign.setdefault(row["campaign_id"], row)
    assert all(row["is_self"] for row in first_per_campaign.values())


async def test_pmax_asset_groups(adapters: dict[str, Platform]) -> None:
    data = await adapters["google"].fetch_report(
        creds("google"), request("google", "pmax_breakdown", "last_90_days")
    )
    expected = truth.asset_groups("last_90_days")
    assert_schema("asset_group", data.rows)
    assert expected and {r["asset_group_id"] for r in data.rows} == set(expected)
    for row in data.rows:
        m = expected[row["asset_group_id"]]
        assert (row["impressions"], row["clicks"]) == (m.impressions, m.clicks)
        assert row["conversion_value"] == pytest.approx(m.conversions_value, abs=0.01)
        assert row["ad_strength"] in ("POOR", "AVERAGE", "GOOD", "EXCELLENT")


def test_queries_use_between_dates_never_during() -> None:
    query = gaql("campaign_day", date(2024, 3, 3), date(2024, 5, 31))
    assert "BETWEEN '2024-03-03' AND '2024-05-31'" in query
    assert "DURING" not in query


def test_customer_ids_lose_their_dashes_and_must_be_digits() -> None:
    assert customer_id("123-456-7890") == "1234567890"
    with pytest.raises(PlatformError) as info:
        customer_id("12/../34")
    assert info.value.code == "invalid_request"


# -- tokens -----------------------------------------------------------------------------


async def test_lazy_refresh_happens_once_and_the_grant_is_reusable(
    sandbox: Sandbox, adapters: dict[str, Platform], clock: FakeClock
) -> None:
    google = adapters["google"]
    first = await google.fetch_report(creds("google"), request("google"))
    assert await sandbox.calls("google", "token") == 1
    grant = first.refreshed
    assert grant is not None and grant.expires_at == clock.now + 3599
    assert grant.access_token in await sandbox.issued("google")
    assert GOOGLE_REFRESH not in repr(grant) and grant.access_token not in repr(grant)

    stored = creds("google").with_grant(grant)
    again = await google.fetch_report(stored, request("google", "quality_score"))
    assert again.refreshed is None and again.api_calls == 1
    assert await sandbox.calls("google", "token") == 1


async def test_an_access_token_expiring_within_a_minute_is_refreshed_first(
    sandbox: Sandbox, adapters: dict[str, Platform], clock: FakeClock
) -> None:
    google = adapters["google"]
    grant = await google.refresh_token(creds("google"))
    soon = attrs.evolve(creds("google").with_grant(grant), access_token_expires_at=clock.now + 30)
    data = await google.fetch_report(soon, request("google"))
    assert data.refreshed is not None and data.refreshed.access_token != grant.access_token
    assert await sandbox.calls("google", "token") == 2
    assert await sandbox.calls("google", "searchStream") == 1


async def test_a_401_gets_one_refresh_and_a_retry(
    sandbox: Sandbox, adapters: dict[str, Platform], clock: FakeClock
) -> None:
    google = adapters["google"]
    grant = await google.refresh_token(creds("google"))
    await sandbox.token_action("expire", "google", grant.access_token)  # expired early, behind our back
    data = await google.fetch_report(creds("google").with_grant(grant), request("google"))
    assert data.rows and data.refreshed is not None
    assert await sandbox.calls("google", "token") == 2
    assert await sandbox.calls("google", "searchStream") == 2
    assert data.api_calls == 3


async def test_a_401_that_survives_a_fresh_token_is_token_revoked(
    nursery: trio.Nursery, clock: FakeClock
) -> None:
    # Tokens that are dead on arrival: the sandbox answers 401 OAUTH_TOKEN_EXPIRED every time.
    server = await start_sandbox(nursery, SandboxConfig(today=TODAY, google_access_token_ttl_s=0))
    assert server.base_url is not None
    server.state.tokens.register("google", "refresh", GOOGLE_REFRESH)
    google = GoogleAds(sandbox_config(server.base_url, clock))
    error = await fetch_error(google, creds("google"), request("google"))
    assert (error.code, error.status) == ("token_revoked", 401)
    assert "OAUTH_TOKEN_EXPIRED" in error.message
    counts = server.state.requests.counts
    assert counts[("google", "token", None)] == 2  # the lazy refresh and the one retry
    assert counts[("google", "searchStream", CUSTOMER)] == 2
    assert_no_secrets(error, *[r.token for r in server.state.tokens.records.values()])


async def test_a_revoked_refresh_token_is_token_revoked(
    sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
    error = await fetch_error(adapters["google"], creds("google"), request("google"))
    assert (error.code, error.platform, error.status) == ("token_revoked", "google", 400)
    assert "invalid_grant" in error.message
    with pytest.raises(PlatformError) as info:
        await adapters["google"].refresh_token(creds("google"))
    assert info.value.code == "token_revoked"
    assert_no_secrets(info.value)
    assert await sandbox.calls("google", "searchStream") == 0


async def test_an_unknown_refresh_token_and_no_refresh_token_are_token_revoked(
    adapters: dict[str, Platform],
) -> None:
    unknown = Credentials("google", CUSTOMER, refresh_token="never-issued-refresh-token")
    error = await fetch_error(adapters["google"], unknown, request("google"), "never-issued-refresh-token")
    assert error.code == "token_revoked"
    error = await fetch_error(adapters["google"], Credentials("google", CUSTOMER), request("google"))
    assert error.code == "token_revoked" and "no refresh token" in error.message


async def test_refresh_token_returns_a_grant_with_expiry(
    adapters: dict[str, Platform], clock: FakeClock
) -> None:
    grant = await adapters["google"].refresh_token(creds("google"))
    assert isinstance(grant, TokenGrant)
    assert grant.access_token.startswith("ya29.")
    assert grant.expires_at is not None and math.isclose(grant.expires_at, clock.now + 3599)
    assert "ya29." not in repr(grant)


async def test_an_unknown_customer_is_not_found(adapters: dict[str, Platform]) -> None:
    account = "12345"  # digits, but no Google customer id has five
    error = await fetch_error(
        adapters["google"], creds("google", account), request("google", account_id=account)
    )
    assert (error.code, error.status) == ("not_found", 404)
    assert "CUSTOMER_NOT_FOUND" in error.message


# -- the Google of today: no developer token, access levels on the Cloud project ----------


async def _sent_headers(config: Any, credentials: Credentials | None = None) -> list[httpx.Headers]:
    """The headers of every searchStream request one fetch sends."""
    sent: list[httpx.Headers] = []

    async def record(req: httpx.Request) -> None:
        if req.url.path.endswith("googleAds:searchStream"):
            sent.append(req.headers)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        data = await GoogleAds(config, http=http).fetch_report(
            credentials or creds("google"), request("google")
        )
    assert data.rows
    return sent


async def test_no_developer_token_is_needed_or_sent(sandbox: Sandbox, clock: FakeClock) -> None:
    config = sandbox_config(sandbox.url, clock)
    assert config.google_developer_token is None
    [headers] = await _sent_headers(config)
    assert "developer-token" not in headers and "login-customer-id" not in headers
    [headers] = await _sent_headers(attrs.evolve(config, google_developer_token="still-configured"))
    assert headers["developer-token"] == "still-configured"  # sent while one is configured


async def test_the_manager_account_goes_in_login_customer_id(sandbox: Sandbox, clock: FakeClock) -> None:
    config = sandbox_config(sandbox.url, clock, google_login_customer_id="111-222-3333")
    [headers] = await _sent_headers(config)
    assert headers["login-customer-id"] == "1112223333"
    own = attrs.evolve(creds("google"), login_customer_id="4445556666")
    [headers] = await _sent_headers(config, own)
    assert headers["login-customer-id"] == "4445556666"  # the credential's own wins


@pytest.mark.parametrize(
    ("reason", "advice"),
    [
        (
            "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION",
            "has Test access, for test accounts only: apply for Explorer, Basic or Standard access on its "
            "Google Ads API Overview page",
        ),
        ("CLOUD_PROJECT_NOT_UNDER_ORGANIZATION", "not under the organization its access level requires"),
    ],
)
async def test_a_cloud_project_without_the_access_level_is_invalid_request_saying_what_to_do(
    sandbox: Sandbox, adapters: dict[str, Platform], reason: str, advice: str
) -> None:
    await sandbox.faults("google", {"access_denied": {"next": 1, "reason": reason}})
    error = await fetch_error(adapters["google"], creds("google"), request("google"))
    assert (error.code, error.status) == ("invalid_request", 403)
    assert f"authorizationError.{reason}" in error.message
    assert advice in error.message


async def test_the_daily_operations_quota_used_up_is_rate_limited_until_it_refills(
    sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    await sandbox.faults("google", {"quota_exhausted": {"next": 1, "retry_after_s": 5400}})
    error = await fetch_error(adapters["google"], creds("google"), request("google"))
    assert (error.code, error.status, error.retry_after_s) == ("rate_limited", 429, 5400.0)
    assert "quotaError.RESOURCE_EXHAUSTED" in error.message
    assert "daily operations quota" in error.message and "apply for a higher access level" in error.message


async def test_a_short_burst_limit_says_so(sandbox: Sandbox, adapters: dict[str, Platform]) -> None:
    await sandbox.faults("google", {"rate_limit": {"next": 1, "retry_after_s": 7}})
    error = await fetch_error(adapters["google"], creds("google"), request("google"))
    assert (error.code, error.retry_after_s) == ("rate_limited", 7.0)
    assert "too many requests in a short time" in error.message
    assert "daily operations quota" not in error.message


async def test_a_version_google_no_longer_serves_is_invalid_request_naming_the_key(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    google = GoogleAds(sandbox_config(sandbox.url, clock, google_api_version="v22"))
    error = await fetch_error(google, creds("google"), request("google"))
    assert (error.code, error.status) == ("invalid_request", 404)
    assert "Google Ads API v22 is not served" in error.message
    assert "google_ads_api_version (DENEVA_GOOGLE_ADS_API_VERSION) to v26" in error.message
