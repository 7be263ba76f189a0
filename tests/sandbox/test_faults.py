"""Injected faults, in each platform's own words: rate limits, 5xx, hangs, broken bodies."""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from tests.sandbox.conftest import (
    INSIGHTS,
    REPORT,
    STREAM,
    gaql,
    google_error,
    google_error_code,
    google_headers,
    meta_token,
    refresh_form,
    report_params,
    set_faults,
    tiktok_token,
)

QUERY = "SELECT campaign.id, metrics.clicks FROM campaign WHERE segments.date DURING LAST_7_DAYS"


async def test_google_rate_limit_is_429_resource_exhausted_with_retry_after(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client)
    await set_faults(client, "google", {"rate_limit": {"next": 2, "retry_after_s": 7}})
    for _ in range(2):
        response = await gaql(client, headers, QUERY)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        error = google_error(response)
        assert error["status"] == "RESOURCE_EXHAUSTED"
        failure = error["details"][0]["errors"][0]
        assert failure["errorCode"] == {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"}
        assert failure["details"]["quotaErrorDetails"]["retryDelay"] == "7s"
    assert (await gaql(client, headers, QUERY)).status_code == 200


async def test_google_quota_exhausted_is_the_cloud_projects_daily_operations_used_up(
    client: httpx.AsyncClient,
) -> None:
    headers = await google_headers(client)
    await set_faults(client, "google", {"quota_exhausted": {"next": 1, "retry_after_s": 5400}})
    response = await gaql(client, headers, QUERY)
    assert response.status_code == 429 and "retry-after" not in response.headers
    error = google_error(response)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    failure = error["details"][0]["errors"][0]
    assert failure["errorCode"] == {"quotaError": "RESOURCE_EXHAUSTED"}
    details = failure["details"]["quotaErrorDetails"]
    assert details["retryDelay"] == "5400s"
    assert details["rateName"] == "Number of operations for explorer access"
    assert (await gaql(client, headers, QUERY)).status_code == 200


@pytest.mark.parametrize(
    "reason", ["CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION", "CLOUD_PROJECT_NOT_UNDER_ORGANIZATION"]
)
async def test_google_access_denied_is_403_with_the_access_level_reason(
    client: httpx.AsyncClient, reason: str
) -> None:
    headers = await google_headers(client)
    await set_faults(client, "google", {"access_denied": {"next": 1, "reason": reason}})
    response = await gaql(client, headers, QUERY)
    assert response.status_code == 403
    assert google_error(response)["status"] == "PERMISSION_DENIED"
    assert google_error_code(response) == {"authorizationError": reason}
    assert (await gaql(client, headers, QUERY)).status_code == 200


async def test_access_level_faults_are_googles_only(client: httpx.AsyncClient) -> None:
    for platform in ("meta", "tiktok"):
        for kind in ("access_denied", "quota_exhausted"):
            response = await client.put(f"/_control/faults/{platform}", json={kind: {"next": 1}})
            assert response.status_code == 400
            assert f"{kind} is a google fault" in response.json()["error"]
    response = await client.put("/_control/faults/google", json={"access_denied": {"reason": "NOPE"}})
    assert response.status_code == 400


async def test_meta_rate_limits_are_http_400_with_codes_17_4_613(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    for code in (17, 4, 613):
        await set_faults(client, "meta", {"rate_limit": {"next": 1, "retry_after_s": 90, "meta_code": code}})
        response = await client.get(INSIGHTS, params={"access_token": token})
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["type"], error["is_transient"]) == (
            code,
            "OAuthException",
            True,
        )
        assert response.headers["retry-after"] == "90"
        usage = json.loads(response.headers["x-business-use-case-usage"])
        assert usage["1001"][0]["estimated_time_to_regain_access"] == 2
        assert (await client.get(INSIGHTS, params={"access_token": token})).status_code == 200


async def test_tiktok_rate_limit_is_code_40100_under_http_200(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    await set_faults(client, "tiktok", {"rate_limit": {"next": 1, "retry_after_s": 3}})
    response = await client.get(REPORT, params=report_params(), headers={"Access-Token": token})
    assert response.status_code == 200 and response.json()["code"] == 40100
    assert response.headers["retry-after"] == "3"


async def test_server_errors_per_platform(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    meta = await meta_token(client)
    tiktok = await tiktok_token(client)
    for platform in ("google", "meta", "tiktok"):
        await set_faults(client, platform, {"server_error": {"next": 2, "status": 503}})
    google = await gaql(client, headers, QUERY)
    assert google.status_code == 503 and google_error(google)["status"] == "UNAVAILABLE"
    meta_response = await client.get(INSIGHTS, params={"access_token": meta})
    assert meta_response.status_code == 503
    assert meta_response.json()["error"]["code"] == 2 and meta_response.json()["error"]["is_transient"]
    tiktok_response = await client.get(REPORT, params=report_params(), headers={"Access-Token": tiktok})
    assert tiktok_response.status_code == 503 and tiktok_response.json()["code"] == 50000
    for platform in ("google", "meta", "tiktok"):
        await set_faults(client, platform, {"server_error": {"next": 1, "status": 500}})
    google = await gaql(client, headers, QUERY)
    assert google.status_code == 500 and google_error_code(google) == {"internalError": "INTERNAL_ERROR"}


async def test_timeout_hangs_then_answers_deadline_exceeded(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    await set_faults(client, "google", {"timeout": {"next": 1, "hang_s": 0.05}})
    response = await gaql(client, headers, QUERY)
    assert response.status_code == 504 and google_error(response)["status"] == "DEADLINE_EXCEEDED"


async def test_a_long_hang_trips_the_client_timeout(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    await set_faults(client, "meta", {"timeout": {"next": 1, "hang_s": 60}})
    with pytest.raises(httpx.ReadTimeout):
        await client.get(INSIGHTS, params={"access_token": token}, timeout=0.2)
    # The server is still serving: the next request is not faulted.
    assert (await client.get(INSIGHTS, params={"access_token": token})).status_code == 200


async def test_malformed_bodies(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    tiktok = await tiktok_token(client)
    await set_faults(client, "google", {"malformed": {"next": 1, "kind": "truncated"}})
    truncated = await gaql(client, headers, QUERY)
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    await set_faults(client, "tiktok", {"malformed": {"next": 1, "kind": "html", "status": 502}})
    html = await client.get(REPORT, params=report_params(), headers={"Access-Token": tiktok})
    assert html.status_code == 502
    assert html.headers["content-type"].startswith("text/html") and b"<html" in html.content


async def test_latency_delays_every_covered_request(client: httpx.AsyncClient) -> None:
    token = await meta_token(client)
    await set_faults(client, "meta", {"latency_ms": 60})
    started = trio.current_time()
    response = await client.get(INSIGHTS, params={"access_token": token})
    assert response.status_code == 200
    assert trio.current_time() - started >= 0.06


async def test_probability_faults_are_seeded_and_repeat(client: httpx.AsyncClient) -> None:
    token = await tiktok_token(client)
    plan = {"rate_limit": {"probability": 0.5}}

    async def pattern() -> list[int]:
        await set_faults(client, "tiktok", plan)
        codes = []
        for _ in range(16):
            response = await client.get(REPORT, params=report_params(), headers={"Access-Token": token})
            codes.append(response.json()["code"])
        return codes

    first = await pattern()
    assert set(first) == {0, 40100}
    assert await pattern() == first


async def test_faults_cover_api_endpoints_unless_told_otherwise(client: httpx.AsyncClient) -> None:
    await set_faults(client, "google", {"server_error": {"next": 5}})
    headers = await google_headers(client)  # the token endpoint is not covered by default
    assert (await gaql(client, headers, QUERY)).status_code == 503
    await set_faults(
        client, "google", {"endpoints": ["token"], "rate_limit": {"next": 1, "retry_after_s": 2}}
    )
    response = await client.post("/google/token", data=refresh_form("refresh-1"))
    assert response.status_code == 429 and response.json()["error"] == "rate_limit_exceeded"
    assert (await gaql(client, headers, QUERY)).status_code == 200


async def test_fault_state_is_visible_and_clearable(client: httpx.AsyncClient) -> None:
    await set_faults(client, "meta", {"latency_ms": 5, "server_error": {"next": 3}})
    faults = (await client.get("/_control/faults")).json()["faults"]
    assert faults["meta"]["plan"]["latency_ms"] == 5
    assert faults["meta"]["remaining"]["server_error"] == 3
    assert (await client.delete("/_control/faults/meta")).status_code == 200
    assert (await client.get("/_control/faults")).json()["faults"] == {}


async def test_bad_fault_plans_are_refused(client: httpx.AsyncClient) -> None:
    bad = [
        {"rate_limit": {"probability": 2}},
        {"rate_limit": {"meta_code": 99}},
        {"server_error": {"status": 404}},
        {"latency": 5},
        {"malformed": {"kind": "xml"}},
        {"endpoints": ["insights"]},
        [1, 2],
    ]
    for plan in bad:
        response = await client.put("/_control/faults/google", json=plan)
        assert response.status_code == 400, plan
        assert response.json()["error"]
    assert (await client.put("/_control/faults/myspace", json={})).status_code == 404
    response = await client.put("/_control/faults/google", content=b"{nope")
    assert response.status_code == 400


async def test_faulted_calls_count_in_the_request_log(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    await set_faults(client, "google", {"rate_limit": {"next": 1}})
    await gaql(client, headers, QUERY)
    await gaql(client, headers, QUERY)
    await client.post(STREAM.replace("1234567890", "5555555555"), json={"query": QUERY}, headers=headers)
    summary = (await client.get("/_control/requests", params={"platform": "google"})).json()
    assert summary["counts"]["google"]["searchStream"] == {"1234567890": 2, "5555555555": 1}
    assert summary["counts"]["google"]["token"] == {"-": 1}
    faults = [r["fault"] for r in summary["log"] if r["endpoint"] == "searchStream"]
    assert faults == ["rate_limit", None, None]
    assert [r["status"] for r in summary["log"] if r["endpoint"] == "searchStream"] == [
        429,
        200,
        200,
    ]


async def test_wrong_types_wraps_every_metric_value_in_an_object(client: httpx.AsyncClient) -> None:
    headers = await google_headers(client)
    meta = await meta_token(client)
    await set_faults(client, "google", {"malformed": {"next": 1, "kind": "wrong_types"}})
    response = await gaql(client, headers, QUERY)
    assert response.status_code == 200
    rows = [row for batch in response.json() for row in batch["results"]]
    assert rows and all(set(row["metrics"]["clicks"]) == {"value"} for row in rows)
    assert all(isinstance(row["campaign"]["id"], str) for row in rows)  # only metrics change
    assert isinstance((await gaql(client, headers, QUERY)).json()[0]["results"][0]["metrics"]["clicks"], str)
    await set_faults(client, "meta", {"malformed": {"next": 1, "kind": "wrong_types"}})
    insights = (await client.get(INSIGHTS, params={"access_token": meta})).json()
    assert insights["data"] and all(set(row["impressions"]) == {"value"} for row in insights["data"])
