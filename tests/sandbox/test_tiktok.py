"""TikTok Business: BASIC reports with string metrics and page_info, campaigns, auth codes."""

from __future__ import annotations

import math
from typing import Any

import httpx

from tests.sandbox.conftest import ADVERTISER, REPORT, register, report_params, tiktok_token


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0 and body["message"] == "OK", body
    assert len(body["request_id"]) == 32
    data: dict[str, Any] = body["data"]
    return data


def _fails(response: httpx.Response, code: int) -> str:
    assert response.status_code == 200, response.text  # TikTok answers errors with HTTP 200
    body = response.json()
    assert body["code"] == code, body
    assert body["request_id"] and body["data"] == {}
    message: str = body["message"]
    return message


async def test_campaign_report_by_day(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    data = _ok(await client.get(REPORT, params=report_params(), headers={"Access-Token": token}))
    rows = data["list"]
    assert rows
    days = {r["dimensions"]["stat_time_day"] for r in rows}
    assert days == {f"2024-05-{d:02d} 00:00:00" for d in range(25, 32)}
    row = rows[0]
    assert set(row["dimensions"]) == {"campaign_id", "stat_time_day"}
    assert set(row["metrics"]) == {
        "spend",
        "impressions",
        "clicks",
        "ctr",
        "conversion",
        "campaign_name",
    }
    assert all(isinstance(v, str) for v in row["metrics"].values())
    assert float(row["metrics"]["spend"]) > 0 and row["metrics"]["impressions"].isdigit()
    info = data["page_info"]
    assert info == {"page": 1, "page_size": 1000, "total_number": len(rows), "total_page": 1}


async def test_paging(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    headers = {"Access-Token": token}
    everything = _ok(await client.get(REPORT, params=report_params(), headers=headers))["list"]
    size = 4
    pages = math.ceil(len(everything) / size)
    collected = []
    for page in range(1, pages + 2):
        data = _ok(await client.get(REPORT, params=report_params(page=page, page_size=size), headers=headers))
        assert data["page_info"]["total_number"] == len(everything)
        assert data["page_info"]["total_page"] == pages
        collected.extend(data["list"])
    assert collected == everything  # the page past the end is empty
    default = _ok(await client.get(REPORT, params=report_params(page_size=""), headers=headers))
    assert default["page_info"]["page_size"] == 10


async def test_advertiser_totals_and_ordering(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    headers = {"Access-Token": token}
    params = report_params(dimensions=["campaign_id"], metrics=["spend", "impressions"], order_field="spend")
    by_campaign = _ok(await client.get(REPORT, params=params, headers=headers))["list"]
    spends = [float(r["metrics"]["spend"]) for r in by_campaign]
    assert spends == sorted(spends, reverse=True)
    params = report_params(
        data_level="AUCTION_ADVERTISER", dimensions=["advertiser_id"], metrics=["impressions"]
    )
    total = _ok(await client.get(REPORT, params=params, headers=headers))["list"]
    assert total[0]["dimensions"] == {"advertiser_id": ADVERTISER}
    assert int(total[0]["metrics"]["impressions"]) == sum(
        int(r["metrics"]["impressions"]) for r in by_campaign
    )


async def test_ad_level_and_lifetime(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    params = report_params(
        data_level="AUCTION_AD", dimensions=["ad_id"], metrics=["spend", "ad_name", "campaign_name"]
    )
    params.pop("start_date")
    params.pop("end_date")
    params["query_lifetime"] = "true"
    rows = _ok(await client.get(REPORT, params=params, headers={"Access-Token": token}))["list"]
    assert rows and all(r["metrics"]["ad_name"] and r["metrics"]["campaign_name"] for r in rows)


async def test_bad_parameters_are_code_40001(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    headers = {"Access-Token": token}
    cases: list[dict[str, str]] = [
        {**report_params(), "dimensions": "[campaign_id"},
        {**report_params(), "metrics": '{"spend": 1}'},
        report_params(metrics=["spend", "bogus_metric"]),
        report_params(dimensions=["adgroup_id"]),
        report_params(dimensions=["campaign_id", "ad_id"]),
        report_params(data_level="AUCTION_KEYWORD"),
        report_params(report_type="AUDIENCE"),
        report_params(start_date="2024-05-31", end_date="2024-05-01"),
        report_params(start_date="2024-01-01", end_date="2024-05-31"),
        report_params(start_date="yesterday"),
        report_params(page_size=5000),
        report_params(page=0),
        report_params(advertiser_id="adv-1"),
        report_params(dimensions=["stat_time_day"], metrics=["campaign_name"]),
        {k: v for k, v in report_params().items() if k != "advertiser_id"},
        {**report_params(), "filtering": "{oops"},
    ]
    for params in cases:
        _fails(await client.get(REPORT, params=params, headers=headers), 40001)


async def test_token_errors(client: httpx.AsyncClient) -> None:
    _fails(await client.get(REPORT, params=report_params()), 40104)
    _fails(await client.get(REPORT, params=report_params(), headers={"Access-Token": "unknown"}), 40105)


async def test_campaign_get(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    response = await client.get(
        "/tiktok/open_api/v1.3/campaign/get/",
        params={"advertiser_id": ADVERTISER, "page_size": "50"},
        headers={"Access-Token": token},
    )
    data = _ok(response)
    assert data["list"] and data["page_info"]["total_number"] == len(data["list"])
    campaign = data["list"][0]
    assert campaign["budget_mode"] == "BUDGET_MODE_DAY" and campaign["budget"] > 0
    assert campaign["operation_status"] in ("ENABLE", "DISABLE")


async def test_auth_codes_exchange_once_for_a_working_token(client: httpx.AsyncClient) -> None:
    await register(client, "tiktok", auth_code="code-1")
    url = "/tiktok/open_api/v1.3/oauth2/access_token/"
    form = {"app_id": "app", "secret": "s", "auth_code": "code-1"}
    data = _ok(await client.post(url, json=form))
    token = data["access_token"]
    _ok(await client.get(REPORT, params=report_params(), headers={"Access-Token": token}))
    _fails(await client.post(url, json=form), 40110)
    _fails(await client.post(url, json={"app_id": "app"}), 40001)


async def test_same_request_same_bytes(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    first = await client.get(REPORT, params=report_params(), headers={"Access-Token": token})
    second = await client.get(REPORT, params=report_params(), headers={"Access-Token": token})
    assert first.content == second.content
