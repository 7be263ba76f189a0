"""The control API: tokens (register, revoke, restore, expire), the request log, reset."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import (
    CUSTOMER,
    INSIGHTS,
    REPORT,
    gaql,
    google_error_code,
    google_headers,
    meta_token,
    refresh_form,
    register,
    report_params,
    tiktok_token,
)

QUERY = "SELECT campaign.id FROM campaign"


async def _control(client: httpx.AsyncClient, action: str, platform: str, token: str) -> httpx.Response:
    return await client.post(f"/_control/tokens/{action}", json={"platform": platform, "token": token})


async def test_revoking_a_google_refresh_token_kills_its_grant_and_access_tokens(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client, "refresh-1")
    assert (await _control(client, "revoke", "google", "refresh-1")).status_code == 200
    response = await client.post("/google/token", data=refresh_form("refresh-1"))
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    api = await gaql(client, headers, QUERY)
    assert api.status_code == 401
    assert google_error_code(api) == {"authenticationError": "OAUTH_TOKEN_REVOKED"}

    assert (await _control(client, "restore", "google", "refresh-1")).status_code == 200
    assert (await client.post("/google/token", data=refresh_form("refresh-1"))).status_code == 200
    assert (await gaql(client, headers, QUERY)).status_code == 200


async def test_google_revoke_endpoint(client: httpx.AsyncClient) -> None:
    await google_headers(client, "refresh-2")
    assert (await client.post("/google/revoke", data={"token": "refresh-2"})).status_code == 200
    assert (await client.post("/google/token", data=refresh_form("refresh-2"))).json()[
        "error"
    ] == "invalid_grant"
    assert (await client.post("/google/revoke", params={"token": "unknown"})).status_code == 400


async def test_expiring_a_google_access_token(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    token = headers["Authorization"].removeprefix("Bearer ")
    assert (await _control(client, "expire", "google", token)).status_code == 200
    response = await gaql(client, headers, QUERY)
    assert google_error_code(response) == {"authenticationError": "OAUTH_TOKEN_EXPIRED"}


async def test_meta_revoke_restore_and_expire(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    await _control(client, "revoke", "meta", token)
    error = (await client.get(INSIGHTS, params={"access_token": token})).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 460)
    await _control(client, "restore", "meta", token)
    assert (await client.get(INSIGHTS, params={"access_token": token})).status_code == 200
    await _control(client, "expire", "meta", token)
    error = (await client.get(INSIGHTS, params={"access_token": token})).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 463)


async def test_revoking_a_meta_token_kills_the_long_lived_tokens_exchanged_from_it(
    client: httpx.AsyncClient,
) -> None:
    short = await meta_token(client, "short")
    params = {
        "grant_type": "fb_exchange_token",
        "client_id": "a",
        "client_secret": "b",
        "fb_exchange_token": short,
    }
    long_lived = (await client.get("/meta/oauth/access_token", params=params)).json()["access_token"]
    await _control(client, "revoke", "meta", short)
    error = (await client.get(INSIGHTS, params={"access_token": long_lived})).json()["error"]
    assert error["code"] == 190


async def test_tiktok_revoke_and_restore(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    await _control(client, "revoke", "tiktok", token)
    response = await client.get(REPORT, params=report_params(), headers={"Access-Token": token})
    assert response.json()["code"] == 40105
    await _control(client, "restore", "tiktok", token)
    response = await client.get(REPORT, params=report_params(), headers={"Access-Token": token})
    assert response.json()["code"] == 0


async def test_token_control_input_errors(client: httpx.AsyncClient) -> None:
    assert (await _control(client, "revoke", "google", "never-seen")).status_code == 404
    assert (await _control(client, "revoke", "friendster", "x")).status_code == 400
    bad_registrations = [
        {"platform": "tiktok", "refresh_token": "x"},
        {"platform": "google"},
        {"platform": "meta", "access_token": ""},
        {"token": "x"},
    ]
    for body in bad_registrations:
        assert (await client.post("/_control/tokens", json=body)).status_code == 400, body
    assert (await client.post("/_control/tokens", content=b"not json")).status_code == 400
    await register(client, "google", refresh_token="listed", access_token="also-listed")
    listed = (await client.get("/_control/tokens", params={"platform": "google"})).json()["tokens"]
    assert {t["token"] for t in listed} == {"listed", "also-listed"}


async def test_request_log_filters_and_clears(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    token = await meta_token(client)
    await gaql(client, headers, QUERY)
    await client.get(INSIGHTS, params={"access_token": token})
    await client.get("/_control/health")  # control calls are not platform calls
    everything = (await client.get("/_control/requests")).json()
    assert everything["total"] == 3
    assert everything["counts"] == {
        "google": {"searchStream": {CUSTOMER: 1}, "token": {"-": 1}},
        "meta": {"insights": {"1001": 1}},
    }
    only = (await client.get("/_control/requests", params={"endpoint": "insights", "account": "1001"})).json()
    assert only["total"] == 1 and only["log"][0]["status"] == 200
    assert (await client.delete("/_control/requests")).status_code == 200
    assert (await client.get("/_control/requests")).json() == {"total": 0, "counts": {}, "log": []}


async def test_reset_forgets_tokens_faults_log_and_today(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    await client.put("/_control/faults/google", json={"latency_ms": 1})
    await client.put("/_control/today", json={"today": "2024-01-15"})
    assert (await client.post("/_control/reset")).json() == {"reset": True}
    health = (await client.get("/_control/health")).json()
    assert health["today"] == "2024-06-01"
    assert (await client.get("/_control/faults")).json()["faults"] == {}
    assert (await client.get("/_control/requests")).json()["total"] == 0
    assert (await gaql(client, headers, QUERY)).status_code == 401


async def test_today_control_validates(client: httpx.AsyncClient) -> None:
    assert (await client.put("/_control/today", json={"today": "June 1"})).status_code == 400
    assert (await client.put("/_control/today", json={})).status_code == 400
    assert (await client.put("/_control/today", json={"today": None})).json() == {"today": "2024-06-01"}


async def test_account_description_names_campaigns_and_anomalies(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/_control/accounts/google/{CUSTOMER}")
    body = response.json()
    assert body["history"] == {"start": "2024-02-02", "end": "2024-05-31"}
    assert 3 <= len(body["campaigns"]) <= 12 and body["competitors"]
    kinds = {a["kind"] for a in body["anomalies"]}
    assert kinds <= {"spend_spike", "conversion_drop"}
    assert (await client.get("/_control/accounts/google/abc")).status_code == 404
    assert (await client.get("/_control/accounts/bing/1")).status_code == 404
