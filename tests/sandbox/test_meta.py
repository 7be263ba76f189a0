"""Meta Graph: insights with string numbers and cursor paging, campaigns, token exchange."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any

import httpx

from tests.sandbox.conftest import INSIGHTS, META_ACCOUNT, TODAY, meta_token, register

CAMPAIGN_FIELDS = "campaign_id,campaign_name,objective,impressions,clicks,spend,reach,ctr,cpc,actions"


async def _all_pages(client: httpx.AsyncClient, params: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get(INSIGHTS, params=params)
    rows: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["data"])
        pages += 1
        assert pages < 100
        next_url = body.get("paging", {}).get("next")
        if not next_url:
            return rows
        response = await client.get(next_url)


async def test_campaign_insights_by_day(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    params = {
        "access_token": token,
        "level": "campaign",
        "fields": CAMPAIGN_FIELDS,
        "date_preset": "last_7d",
        "time_increment": "1",
    }
    rows = await _all_pages(client, params)
    assert rows
    days = {(TODAY - timedelta(days=n)).isoformat() for n in range(1, 8)}
    assert {r["date_start"] for r in rows} == days
    assert all(r["date_start"] == r["date_stop"] for r in rows)
    row = rows[0]
    for key in ("impressions", "clicks", "reach"):
        assert isinstance(row[key], str) and row[key].isdigit()
    assert isinstance(row["spend"], str) and float(row["spend"]) > 0
    assert float(row["ctr"]) > 0 and row["campaign_id"].isdigit() and row["campaign_name"]
    assert row["objective"].startswith("OUTCOME_")
    assert all(set(a) == {"action_type", "value"} and isinstance(a["value"], str) for a in row["actions"])
    assert "adset_id" not in row


async def test_time_range_and_whole_range_aggregation(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    time_range = json.dumps({"since": "2024-05-01", "until": "2024-05-10"})
    daily = await _all_pages(
        client,
        {"access_token": token, "level": "campaign", "fields": "campaign_id,spend,impressions",
         "time_range": time_range, "time_increment": "1"},
    )  # fmt: skip
    assert min(r["date_start"] for r in daily) == "2024-05-01"
    assert max(r["date_stop"] for r in daily) == "2024-05-10"
    impressions: dict[str, int] = defaultdict(int)
    for r in daily:
        impressions[r["campaign_id"]] += int(r["impressions"])
    total = await _all_pages(
        client,
        {"access_token": token, "level": "campaign", "fields": "campaign_id,impressions",
         "time_range": time_range},
    )  # fmt: skip
    assert {r["campaign_id"]: int(r["impressions"]) for r in total} == impressions
    assert {(r["date_start"], r["date_stop"]) for r in total} == {("2024-05-01", "2024-05-10")}


async def test_ad_sets_and_ads_add_up_to_their_campaigns(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    base = {"access_token": token, "date_preset": "last_30d"}
    by_level = {}
    for level in ("campaign", "adset", "ad"):
        fields = "campaign_id,adset_id,ad_id,ad_name,impressions"
        rows = await _all_pages(client, {**base, "level": level, "fields": fields})
        sums: dict[str, int] = defaultdict(int)
        for r in rows:
            sums[r["campaign_id"]] += int(r["impressions"])
        by_level[level] = sums
        if level == "campaign":
            assert "adset_id" not in rows[0]
        if level == "ad":
            assert rows[0]["ad_id"] and rows[0]["ad_name"] and rows[0]["adset_id"]
    assert by_level["campaign"] == by_level["adset"] == by_level["ad"]
    account = await _all_pages(client, {**base, "fields": "account_id,impressions,spend"})
    assert len(account) == 1 and account[0]["account_id"] == META_ACCOUNT
    assert int(account[0]["impressions"]) == sum(by_level["campaign"].values())


async def test_cursor_paging(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    params = {
        "access_token": token,
        "level": "ad",
        "fields": "ad_id,impressions",
        "date_preset": "last_30d",
        "time_increment": "1",
        "limit": "25",
    }
    first = (await client.get(INSIGHTS, params=params)).json()
    assert len(first["data"]) == 25
    assert set(first["paging"]["cursors"]) == {"before", "after"}
    assert "previous" not in first["paging"]
    second = (
        await client.get(INSIGHTS, params={**params, "after": first["paging"]["cursors"]["after"]})
    ).json()
    assert second["data"][0] != first["data"][0] and "previous" in second["paging"]
    back = (await client.get(second["paging"]["previous"])).json()
    assert back["data"] == first["data"]
    rows = await _all_pages(client, params)
    assert len(rows) > 50
    assert len({(r["ad_id"], r["date_start"]) for r in rows}) == len(rows)
    last = await client.get(INSIGHTS, params={**params, "after": "bm90LWEtY3Vyc29y"})
    assert last.status_code == 400 and last.json()["error"]["code"] == 100


async def test_default_page_size_is_small(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    params = {"access_token": token, "level": "ad", "fields": "ad_id", "date_preset": "last_30d",
              "time_increment": "1"}  # fmt: skip
    body = (await client.get(INSIGHTS, params=params)).json()
    assert len(body["data"]) == 50 and "next" in body["paging"]


async def test_filtering_by_campaign_status(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    filtering = json.dumps([{"field": "campaign.effective_status", "operator": "IN", "value": ["PAUSED"]}])
    params = {
        "access_token": token,
        "level": "campaign",
        "fields": "campaign_id",
        "filtering": filtering,
        "date_preset": "last_30d",
    }
    body = (await client.get(INSIGHTS, params=params)).json()
    assert body["data"] == []  # paused campaigns do not deliver


async def test_campaigns_edge_lists_budgets_in_cents(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    response = await client.get(
        f"/meta/v27.0/act_{META_ACCOUNT}/campaigns",
        params={
            "access_token": token,
            "fields": "id,name,status,effective_status,daily_budget,objective",
        },
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert 3 <= len(data) <= 12
    assert all(c["daily_budget"].isdigit() and c["status"] in ("ACTIVE", "PAUSED", "ARCHIVED") for c in data)
    active = await client.get(
        f"/meta/v27.0/act_{META_ACCOUNT}/campaigns",
        params={"access_token": token, "fields": "id", "effective_status": '["ACTIVE"]'},
    )
    assert 0 < len(active.json()["data"]) <= len(data)


async def test_long_lived_token_exchange(client: httpx.AsyncClient) -> None:
    short = await meta_token(client, "short-lived")
    response = await client.get(
        "/meta/oauth/access_token",
        params={"grant_type": "fb_exchange_token", "client_id": "app", "client_secret": "s",
                "fb_exchange_token": short},
    )  # fmt: skip
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 5184000
    long_lived = body["access_token"]
    insights = await client.get(INSIGHTS, params={"access_token": long_lived})
    assert insights.status_code == 200
    versioned = await client.get(
        "/meta/v27.0/oauth/access_token",
        params={"grant_type": "fb_exchange_token", "client_id": "app", "client_secret": "s",
                "fb_exchange_token": "unknown"},
    )  # fmt: skip
    error = versioned.json()["error"]
    assert versioned.status_code == 400 and (error["type"], error["code"]) == (
        "OAuthException",
        190,
    )
    missing = await client.get("/meta/oauth/access_token", params={"grant_type": "fb_exchange_token"})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == 101


async def test_token_errors(client: httpx.AsyncClient) -> None:
    response = await client.get(INSIGHTS)
    assert response.status_code == 400 and response.json()["error"]["code"] == 104
    response = await client.get(INSIGHTS, params={"access_token": "nope"})
    error = response.json()["error"]
    assert (error["type"], error["code"], error["fbtrace_id"] != "") == (
        "OAuthException",
        190,
        True,
    )
    assert "error_subcode" not in error
    await register(client, "meta", access_token="bearer-token")
    header_auth = await client.get(INSIGHTS, headers={"Authorization": "OAuth bearer-token"})
    assert header_auth.status_code == 200


async def test_bad_parameters_are_graph_code_100(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    bad = [
        {"time_range": "{since: 2024-05-01}"},
        {"time_range": json.dumps({"since": "2024-05-10", "until": "2024-05-01"})},
        {"time_range": json.dumps({"since": "05/01/2024", "until": "2024-05-02"})},
        {"date_preset": "last_5d"},
        {"level": "keyword"},
        {"fields": "impressions,bogus"},
        {"time_increment": "0"},
        {"limit": "-3"},
        {"filtering": "[{"},
        {"filtering": json.dumps([{"field": "campaign.unknown", "operator": "IN", "value": []}])},
        {"breakdowns": "age"},
    ]
    for params in bad:
        response = await client.get(INSIGHTS, params={"access_token": token, **params})
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert error["code"] == 100 and error["message"].startswith("(#100)"), params
        assert error["type"] == "OAuthException"
    old = json.dumps({"since": "2019-01-01", "until": "2019-01-02"})
    response = await client.get(INSIGHTS, params={"access_token": token, "time_range": old})
    assert response.json()["error"]["code"] == 3018


async def test_unknown_accounts_are_unsupported_get_requests(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    for node in ("act_abc", "1001", "act_"):
        response = await client.get(f"/meta/v27.0/{node}/insights", params={"access_token": token})
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["type"], error["code"], error["error_subcode"]) == (
            "GraphMethodException",
            100,
            33,
        )


async def test_same_request_same_bytes(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    params = {
        "access_token": token,
        "level": "adset",
        "fields": "adset_id,spend,actions",
        "time_increment": "1",
    }
    first = await client.get(INSIGHTS, params=params)
    second = await client.get(INSIGHTS, params=params)
    assert first.content == second.content
