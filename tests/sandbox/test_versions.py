"""The API versions the sandbox serves: the platforms' current ones, and each platform's
answer to a version it no longer serves."""

from __future__ import annotations

import httpx

from deneva.sandbox.state import SERVED_VERSIONS
from tests.sandbox.conftest import (
    ADVERTISER,
    CUSTOMER,
    META_ACCOUNT,
    gaql,
    google_headers,
    meta_token,
    report_params,
    set_faults,
    tiktok_token,
)

QUERY = "SELECT campaign.id FROM campaign"


def _stream(version: str) -> str:
    return f"/google/{version}/customers/{CUSTOMER}/googleAds:searchStream"


async def test_the_current_versions_are_served(client: httpx.AsyncClient) -> None:
    assert SERVED_VERSIONS == {
        "google": ("v23", "v24", "v25", "v26"),
        "meta": ("v25.0", "v26.0", "v27.0"),
        "tiktok": ("v1.3",),
    }
    headers = await google_headers(client)
    assert (await client.post(_stream("v26"), json={"query": QUERY}, headers=headers)).status_code == 200
    meta = await meta_token(client)
    insights = await client.get(f"/meta/v27.0/act_{META_ACCOUNT}/insights", params={"access_token": meta})
    assert insights.status_code == 200
    tiktok = await tiktok_token(client)
    report = await client.get(
        "/tiktok/open_api/v1.3/report/integrated/get/",
        params=report_params(),
        headers={"Access-Token": tiktok},
    )
    assert report.status_code == 200 and report.json()["code"] == 0


async def test_google_answers_a_sunset_version_404_without_a_google_ads_failure(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client)
    for version in ("v22", "v17", "v99"):
        response = await client.post(_stream(version), json={"query": QUERY}, headers=headers)
        assert response.status_code == 404, version
        body = response.json()
        assert body == {
            "error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
        }
    search = await client.post(
        f"/google/v21/customers/{CUSTOMER}/googleAds:search", json={"query": QUERY}, headers=headers
    )
    assert search.status_code == 404 and "details" not in search.json()["error"]


async def test_meta_answers_an_expired_version_with_code_2635(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    for version, edge in (("v24.0", "insights"), ("v19.0", "campaigns"), ("v99.0", "insights")):
        response = await client.get(
            f"/meta/{version}/act_{META_ACCOUNT}/{edge}", params={"access_token": token}
        )
        assert response.status_code == 400, version
        error = response.json()["error"]
        assert (error["code"], error["type"]) == (2635, "OAuthException")
        assert error["message"] == (
            "(#2635) You are calling a deprecated version of the Ads API. Please update to the latest "
            "version: v27.0."
        )


async def test_tiktok_answers_a_retired_version_404(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    response = await client.get(
        "/tiktok/open_api/v1.2/campaign/get/",
        params={"advertiser_id": ADVERTISER},
        headers={"Access-Token": token},
    )
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == 40400 and "v1.2" in body["message"] and "v1.3" in body["message"]


async def test_a_refused_version_is_logged_and_consumes_no_fault(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    await set_faults(client, "google", {"server_error": {"next": 1}})
    assert (await client.post(_stream("v20"), json={"query": QUERY}, headers=headers)).status_code == 404
    assert (await gaql(client, headers, QUERY)).status_code == 503  # the fault is still there
    log = (await client.get("/_control/requests", params={"platform": "google"})).json()["log"]
    refused = [r for r in log if r["path"].startswith("/google/v20/")]
    assert [(r["status"], r["fault"]) for r in refused] == [(404, "version_not_served")]


async def test_the_served_versions_can_be_changed_and_reset(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    response = await client.put("/_control/versions/google", json={"served": ["v25"]})
    assert response.status_code == 200
    assert (await client.get("/_control/versions")).json()["versions"]["google"] == ["v25"]
    assert (await client.post(_stream("v26"), json={"query": QUERY}, headers=headers)).status_code == 404
    assert (await client.post(_stream("v25"), json={"query": QUERY}, headers=headers)).status_code == 200
    for bad in ({"served": "v25"}, {"served": ["25"]}, {}, {"served": [1]}):
        assert (await client.put("/_control/versions/google", json=bad)).status_code == 400, bad
    assert (await client.put("/_control/versions/bing", json={"served": []})).status_code == 404
    assert (await client.post("/_control/reset")).status_code == 200
    headers = await google_headers(client)
    assert (await client.post(_stream("v26"), json={"query": QUERY}, headers=headers)).status_code == 200
