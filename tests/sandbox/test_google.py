"""Google Ads REST: OAuth refresh, searchStream/search over GAQL, and Google's error shapes."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

import httpx

from deneva.sandbox.data import Account, account_for
from deneva.sandbox.server import SandboxServer
from tests.sandbox.conftest import (
    CUSTOMER,
    STREAM,
    TODAY,
    FakeClock,
    gaql,
    google_error,
    google_error_code,
    google_headers,
    refresh_form,
    register,
    stream_rows,
)

CAMPAIGN_BY_DAY = (
    "SELECT segments.date, campaign.id, campaign.name, campaign.status, "
    "campaign_budget.amount_micros, metrics.impressions, metrics.clicks, metrics.cost_micros, "
    "metrics.conversions, "
    "metrics.conversions_value, metrics.search_budget_lost_impression_share "
    "FROM campaign WHERE segments.date DURING LAST_7_DAYS"
)


# -- OAuth ----------------------------------------------------------------------------


async def test_refresh_token_grant_issues_a_bearer_access_token(client: httpx.AsyncClient) -> None:
    await register(client, "google", refresh_token="r-1")
    response = await client.post("/google/token", data=refresh_form("r-1"))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["access_token"].startswith("ya29.")
    again = await client.post("/google/token", data=refresh_form("r-1"))
    assert again.json()["access_token"] != body["access_token"]


async def test_token_endpoint_rejects_unknown_refresh_tokens_and_bad_requests(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/google/token", data=refresh_form("never-registered"))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")
    form = refresh_form("x")
    form["grant_type"] = "password"
    response = await client.post("/google/token", data=form)
    assert response.json()["error"] == "unsupported_grant_type"
    response = await client.post("/google/token", data={"grant_type": "refresh_token"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_access_tokens_expire_by_the_sandbox_clock(client: httpx.AsyncClient, clock: FakeClock) -> None:
    headers = await google_headers(client)
    assert (await gaql(client, headers, "SELECT campaign.id FROM campaign")).status_code == 200
    clock.now += 3600
    response = await gaql(client, headers, "SELECT campaign.id FROM campaign")
    assert response.status_code == 401
    assert google_error(response)["status"] == "UNAUTHENTICATED"
    assert google_error_code(response) == {"authenticationError": "OAUTH_TOKEN_EXPIRED"}


# -- searchStream ---------------------------------------------------------------------


async def test_campaign_metrics_by_day(client: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    headers = await google_headers(client)
    response = await gaql(client, headers, CAMPAIGN_BY_DAY)
    assert response.headers["content-type"].startswith("application/json")
    batches = response.json()
    assert batches[0]["fieldMask"] == (
        "segments.date,campaign.id,campaign.name,campaign.status,campaignBudget.amountMicros,"
        "metrics.impressions,metrics.clicks,metrics.costMicros,metrics.conversions,"
        "metrics.conversionsValue,metrics.searchBudgetLostImpressionShare"
    )
    assert batches[0]["requestId"]
    rows = stream_rows(response)
    week = {(TODAY - timedelta(days=n)).isoformat() for n in range(1, 8)}
    assert {r["segments"]["date"] for r in rows} == week
    delivering = {c.id for c in _account(sandbox).campaigns if c.status == "ENABLED"}
    assert {r["campaign"]["id"] for r in rows} == delivering
    assert len(rows) == 7 * len(delivering)
    row = rows[0]
    assert row["campaign"]["resourceName"] == f"customers/{CUSTOMER}/campaigns/{row['campaign']['id']}"
    assert row["campaign"]["status"] == "ENABLED"
    # int64 as strings, doubles as numbers, as proto3 JSON has them.
    assert isinstance(row["metrics"]["impressions"], str) and row["metrics"]["impressions"].isdigit()
    assert isinstance(row["metrics"]["costMicros"], str)
    assert isinstance(row["campaignBudget"]["amountMicros"], str)
    assert isinstance(row["metrics"]["conversions"], float)
    search = [r for r in rows if "searchBudgetLostImpressionShare" in r["metrics"]]
    assert search and all(0 <= r["metrics"]["searchBudgetLostImpressionShare"] <= 1 for r in search)
    assert any(r["metrics"]["searchBudgetLostImpressionShare"] > 0.05 for r in search)


def _account(sandbox: SandboxServer) -> Account:
    return account_for("google", CUSTOMER, sandbox.config.seed)


async def test_without_the_date_segment_metrics_add_up_over_the_range(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client)
    daily = stream_rows(await gaql(client, headers, CAMPAIGN_BY_DAY))
    totals: dict[str, int] = defaultdict(int)
    for row in daily:
        totals[row["campaign"]["id"]] += int(row["metrics"]["costMicros"])
    response = await gaql(
        client,
        headers,
        "SELECT campaign.id, metrics.cost_micros FROM campaign WHERE segments.date DURING LAST_7_DAYS",
    )
    summed = {r["campaign"]["id"]: int(r["metrics"]["costMicros"]) for r in stream_rows(response)}
    assert summed == totals


async def test_listing_campaigns_without_metrics_includes_paused_and_removed(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client)
    rows = stream_rows(await gaql(client, headers, "SELECT campaign.id, campaign.status FROM campaign"))
    statuses = [r["campaign"]["status"] for r in rows]
    assert 3 <= len(rows) <= 12 and "metrics" not in rows[0]
    filtered = stream_rows(
        await gaql(client, headers, "SELECT campaign.id FROM campaign WHERE campaign.status = 'ENABLED'")
    )
    assert len(filtered) == statuses.count("ENABLED")


async def test_between_dates_are_clipped_to_the_history(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    query = (
        "SELECT segments.date, metrics.clicks FROM customer "
        "WHERE segments.date BETWEEN '2023-01-01' AND '2024-12-31'"
    )
    days = [r["segments"]["date"] for r in stream_rows(await gaql(client, headers, query))]
    assert len(days) == 120
    assert min(days) == (TODAY - timedelta(days=120)).isoformat()
    assert max(days) == (TODAY - timedelta(days=1)).isoformat()
    query = (
        "SELECT segments.date, metrics.clicks FROM customer "
        "WHERE segments.date >= '2024-05-10' AND segments.date < '2024-05-13'"
    )
    days = [r["segments"]["date"] for r in stream_rows(await gaql(client, headers, query))]
    assert days == ["2024-05-10", "2024-05-11", "2024-05-12"]


async def test_search_term_waste_has_spend_without_conversions(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    query = (
        "SELECT search_term_view.search_term, search_term_view.status, "
        "segments.search_term_match_type, campaign.id, ad_group.id, metrics.impressions, "
        "metrics.clicks, metrics.cost_micros, "
        "metrics.conversions FROM search_term_view WHERE segments.date DURING LAST_30_DAYS "
        "AND metrics.cost_micros > 0 AND metrics.conversions = 0 ORDER BY metrics.cost_micros DESC"
    )
    rows = stream_rows(await gaql(client, headers, query))
    assert rows
    costs = [int(r["metrics"]["costMicros"]) for r in rows]
    assert costs == sorted(costs, reverse=True) and costs[0] > 0
    assert all(r["metrics"]["conversions"] == 0 for r in rows)
    row = rows[0]
    assert row["searchTermView"]["resourceName"].startswith(f"customers/{CUSTOMER}/searchTermViews/")
    assert row["searchTermView"]["status"] in ("NONE", "ADDED", "EXCLUDED")
    assert row["segments"]["searchTermMatchType"]


async def test_keywords_have_quality_scores_from_1_to_10(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    query = (
        "SELECT ad_group_criterion.criterion_id, ad_group_criterion.keyword.text, "
        "ad_group_criterion.keyword.match_type, ad_group_criterion.quality_info.quality_score, "
        "ad_group_criterion.quality_info.search_predicted_ctr, metrics.impressions, "
        "metrics.cost_micros FROM keyword_view WHERE segments.date DURING LAST_30_DAYS"
    )
    rows = stream_rows(await gaql(client, headers, query))
    assert rows
    scores = [
        r["adGroupCriterion"]["qualityInfo"]["qualityScore"]
        for r in rows
        if "qualityScore" in r["adGroupCriterion"].get("qualityInfo", {})
    ]
    assert scores and all(isinstance(s, int) and 1 <= s <= 10 for s in scores)
    assert rows[0]["keywordView"]["resourceName"].startswith(f"customers/{CUSTOMER}/keywordViews/")
    assert rows[0]["adGroupCriterion"]["keyword"]["matchType"] in ("EXACT", "PHRASE", "BROAD")


async def test_auction_insights_list_competitor_domains_and_you(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    query = (
        "SELECT campaign.id, segments.auction_insight_domain, "
        "metrics.auction_insight_search_impression_share, "
        "metrics.auction_insight_search_overlap_rate, "
        "metrics.auction_insight_search_outranking_share FROM campaign "
        "WHERE segments.date DURING LAST_30_DAYS"
    )
    rows = stream_rows(await gaql(client, headers, query))
    domains = {r["segments"]["auctionInsightDomain"] for r in rows}
    assert "You" in domains and len(domains) >= 3
    for row in rows:
        metrics = row["metrics"]
        assert 0 <= metrics["auctionInsightSearchImpressionShare"] <= 1
        if row["segments"]["auctionInsightDomain"] == "You":
            assert "auctionInsightSearchOverlapRate" not in metrics
        else:
            assert 0 <= metrics["auctionInsightSearchOverlapRate"] <= 1
    mixed = await gaql(
        client,
        headers,
        "SELECT segments.auction_insight_domain, metrics.clicks FROM campaign "
        "WHERE segments.date DURING LAST_30_DAYS",
    )
    assert google_error_code(mixed) == {"queryError": "PROHIBITED_FIELD_COMBINATION_IN_SELECT_CLAUSE"}


async def test_pmax_asset_groups(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    query = (
        "SELECT campaign.id, campaign.advertising_channel_type, asset_group.id, asset_group.name, "
        "asset_group.ad_strength, metrics.impressions, metrics.cost_micros, metrics.conversions, "
        "metrics.conversions_value FROM asset_group WHERE segments.date DURING LAST_30_DAYS"
    )
    rows = stream_rows(await gaql(client, headers, query))
    assert rows
    assert {r["campaign"]["advertisingChannelType"] for r in rows} == {"PERFORMANCE_MAX"}
    assert all(r["assetGroup"]["adStrength"] in ("POOR", "AVERAGE", "GOOD", "EXCELLENT") for r in rows)


async def test_the_same_request_returns_the_same_bytes(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    first = await gaql(client, headers, CAMPAIGN_BY_DAY)
    second = await gaql(client, headers, CAMPAIGN_BY_DAY)
    assert first.content == second.content


async def test_other_seeds_and_customers_are_other_accounts(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    one = await gaql(client, headers, CAMPAIGN_BY_DAY, customer="1111111111")
    two = await gaql(client, headers, CAMPAIGN_BY_DAY, customer="2222222222")
    assert stream_rows(one) != stream_rows(two)


async def test_unary_search_answers_one_page_object(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    response = await client.post(
        f"/google/v26/customers/{CUSTOMER}/googleAds:search",
        json={"query": CAMPAIGN_BY_DAY, "returnTotalResultsCount": True},
        headers=headers,
    )
    body = response.json()
    assert response.status_code == 200 and isinstance(body, dict)
    assert int(body["totalResultsCount"]) == len(body["results"]) and "nextPageToken" not in body
    bad = await client.post(
        f"/google/v26/customers/{CUSTOMER}/googleAds:search",
        json={"query": "SELECT"},
        headers=headers,
    )
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


# -- errors ---------------------------------------------------------------------------


async def test_malformed_gaql_is_invalid_argument_with_a_query_error(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client)
    cases = {
        "SELECT campaign.id FROM campaign WHERE": "UNEXPECTED_END_OF_QUERY",
        "SELECT campaign.nope FROM campaign": "UNRECOGNIZED_FIELD",
        "SELECT campaign.id FROM no_such_resource": "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
        "SELECT asset_group.id FROM campaign": "PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE",
        "SELECT segments.date, metrics.clicks FROM campaign": "EXPECTED_FILTERS_ON_DATE_RANGE",
        "SELECT campaign.id FROM campaign WHERE segments.date DURING LAST_90_DAYS": (
            "INVALID_VALUE_WITH_DURING_OPERATOR"
        ),
        "SELECT campaign.id FROM campaign WHERE segments.date BETWEEN 'May 1' AND '2024-05-02'": (
            "INVALID_VALUE_WITH_BETWEEN_OPERATOR"
        ),
        "SELECT campaign.id FROM campaign WHERE campaign.status = 'LIVE'": "BAD_ENUM_CONSTANT",
        "SELECT metrics.search_impression_share FROM search_term_view": (
            "PROHIBITED_METRIC_IN_SELECT_OR_WHERE_CLAUSE"
        ),
    }
    for query, code in cases.items():
        response = await gaql(client, headers, query)
        assert response.status_code == 400, query
        error = google_error(response)
        assert error["status"] == "INVALID_ARGUMENT"
        assert error["details"][0]["errors"][0]["errorCode"] == {"queryError": code}, query
        assert error["details"][0]["requestId"]


async def test_bad_bodies_are_invalid_argument(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    for content in (b"{not json", b"[1, 2]", b'{"query": 7}', b'{"query": "x", "bogus": 1}', b""):
        response = await client.post(STREAM, content=content, headers=headers)
        assert response.status_code == 400, content
        assert google_error(response)["status"] == "INVALID_ARGUMENT"


async def test_customer_ids_must_be_ten_digits(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    response = await gaql(client, headers, "SELECT campaign.id FROM campaign", customer="123-456-7890")
    assert response.status_code == 400
    assert google_error_code(response) == {"requestError": "INVALID_CUSTOMER_ID"}
    response = await gaql(client, headers, "SELECT campaign.id FROM campaign", customer="12345")
    assert response.status_code == 404
    assert google_error(response)["status"] == "NOT_FOUND"


async def test_authentication_errors(client: httpx.AsyncClient) -> None:
    query = "SELECT campaign.id FROM campaign"
    response = await gaql(client, {"developer-token": "d"}, query)
    assert response.status_code == 401 and google_error(response)["status"] == "UNAUTHENTICATED"
    response = await gaql(client, {"Authorization": "Bearer made-up", "developer-token": "d"}, query)
    assert response.status_code == 401
    assert google_error_code(response) == {"authenticationError": "OAUTH_TOKEN_INVALID"}


async def test_the_developer_token_is_optional_and_ignored(client: httpx.AsyncClient) -> None:
    """Google sunset developer tokens on 9 September 2026: the header may be left out, and
    whatever it says is ignored."""
    query = "SELECT campaign.id FROM campaign"
    headers = await google_headers(client)
    with_token = await gaql(client, headers, query)
    del headers["developer-token"]
    without = await gaql(client, headers, query)
    assert without.status_code == 200 and stream_rows(without)
    assert stream_rows(without) == stream_rows(with_token)
    bogus = await gaql(client, {**headers, "developer-token": "not-a-token"}, query)
    assert bogus.status_code == 200 and stream_rows(bogus) == stream_rows(without)


async def test_history_follows_a_pinned_today(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    response = await client.put("/_control/today", json={"today": "2024-03-01"})
    assert response.json() == {"today": "2024-03-01"}
    query = "SELECT segments.date, metrics.clicks FROM customer WHERE segments.date DURING YESTERDAY"
    rows = stream_rows(await gaql(client, headers, query))
    assert [r["segments"]["date"] for r in rows] == [(date(2024, 3, 1) - timedelta(days=1)).isoformat()]
