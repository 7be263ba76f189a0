"""Platform answers the sandbox never gives, served by an httpx MockTransport.

The adapters run unchanged; only the network is replaced, by a handler that answers
with the platforms' documented error shapes, or with JSON of the wrong shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from deneva.adapters import PlatformError, adapters_for
from tests.adapters.conftest import META_TOKEN, FakeClock, assert_no_secrets, creds, request, sandbox_config

BASE = "http://platform.invalid"
Handler = Callable[[httpx.Request], httpx.Response]


async def _fails(platform: str, handler: Handler, clock: FakeClock) -> PlatformError:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        adapter = adapters_for(sandbox_config(BASE, clock), http=http)[platform]
        with pytest.raises(PlatformError) as info:
            await adapter.fetch_report(creds(platform), request(platform))
    assert_no_secrets(info.value, "ya29.mock-access-token")
    return info.value


def _google(search: Callable[[], httpx.Response]) -> Handler:
    def handle(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/google/token":
            return httpx.Response(200, json={"access_token": "ya29.mock-access-token", "expires_in": 3599})
        return search()

    return handle


def _ads_error(status: int, grpc: str, category: str, code: str, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"errorCode": {category: code}, "message": f"{code.lower()} happened"}
    item.update(extra)
    failure = {
        "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
        "errors": [item],
    }
    return {"error": {"code": status, "message": "failed", "status": grpc, "details": [failure]}}


async def test_google_quota_error_without_retry_after_uses_its_retry_delay(clock: FakeClock) -> None:
    body = _ads_error(
        429,
        "RESOURCE_EXHAUSTED",
        "quotaError",
        "RESOURCE_TEMPORARILY_EXHAUSTED",
        details={"quotaErrorDetails": {"retryDelay": "12.5s"}},
    )
    error = await _fails("google", _google(lambda: httpx.Response(429, json=[body])), clock)
    assert (error.code, error.retry_after_s) == ("rate_limited", 12.5)


async def test_google_rpc_retry_info_gives_the_delay_too(clock: FakeClock) -> None:
    body = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "quota",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}],
        }
    }
    error = await _fails("google", _google(lambda: httpx.Response(429, json=body)), clock)
    assert (error.code, error.retry_after_s) == ("rate_limited", 30.0)


@pytest.mark.parametrize(
    ("status", "grpc", "category", "code", "expected"),
    [
        (400, "INVALID_ARGUMENT", "queryError", "UNRECOGNIZED_FIELD", "invalid_request"),
        (403, "PERMISSION_DENIED", "authorizationError", "USER_PERMISSION_DENIED", "not_found"),
        (403, "PERMISSION_DENIED", "authorizationError", "DEVELOPER_TOKEN_NOT_APPROVED", "invalid_request"),
        (
            401,
            "UNAUTHENTICATED",
            "authenticationError",
            "DEVELOPER_TOKEN_PARAMETER_MISSING",
            "invalid_request",
        ),
        (500, "INTERNAL", "internalError", "INTERNAL_ERROR", "transient"),
    ],
)
async def test_google_errors_map_to_codes(
    clock: FakeClock, status: int, grpc: str, category: str, code: str, expected: str
) -> None:
    body = _ads_error(status, grpc, category, code)
    error = await _fails("google", _google(lambda: httpx.Response(status, json=[body])), clock)
    assert (error.code, error.status) == (expected, status)
    assert f"{category}.{code}" in error.message


@pytest.mark.parametrize(
    ("status", "grpc", "category", "code", "expected", "advice"),
    [
        (
            403,
            "PERMISSION_DENIED",
            "authorizationError",
            "DEVELOPER_TOKEN_PROHIBITED",
            "invalid_request",
            "remove the DENEVA_GOOGLE_DEVELOPER_TOKEN secret file",
        ),
        (429, "RESOURCE_EXHAUSTED", "quotaError", "ACCESS_PROHIBITED", "invalid_request", "may not call"),
        (
            403,
            "PERMISSION_DENIED",
            "authorizationError",
            "USER_PERMISSION_DENIED",
            "not_found",
            "set google_login_customer_id to the manager's customer id",
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "requestError",
            "UNSUPPORTED_VERSION",
            "invalid_request",
            "Google Ads API v26 is not served",
        ),
    ],
)
async def test_google_errors_say_what_to_do(
    clock: FakeClock, status: int, grpc: str, category: str, code: str, expected: str, advice: str
) -> None:
    body = _ads_error(status, grpc, category, code)
    error = await _fails("google", _google(lambda: httpx.Response(status, json=[body])), clock)
    assert (error.code, error.status) == (expected, status)
    assert advice in error.message and f"{category}.{code}" in error.message


async def test_googles_html_404_for_a_version_it_has_no_route_for_names_the_key(clock: FakeClock) -> None:
    page = httpx.Response(
        404, text="<html>The requested URL was not found.</html>", headers={"content-type": "text/html"}
    )
    error = await _fails("google", _google(lambda: page), clock)
    assert (error.code, error.status) == ("invalid_request", 404)
    assert "set google_ads_api_version (DENEVA_GOOGLE_ADS_API_VERSION) to v26" in error.message


async def test_google_error_at_the_end_of_a_stream_counts(clock: FakeClock) -> None:
    stream = [{"results": []}, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "later"}}]
    error = await _fails("google", _google(lambda: httpx.Response(200, json=stream)), clock)
    assert (error.code, error.status) == ("transient", 503)


async def test_google_fields_of_the_wrong_type_are_internal_and_named(clock: FakeClock) -> None:
    row = {
        "segments": {"date": "2024-05-30"},
        "campaign": {"id": "1", "name": "c", "status": "ENABLED"},
        "metrics": {"clicks": {"oops": 1}},
    }
    stream = [{"results": [row]}]
    error = await _fails("google", _google(lambda: httpx.Response(200, json=stream)), clock)
    assert error.code == "internal"
    assert error.message == "google searchStream: row 0: metrics.clicks is an object, expected an integer"


async def test_google_stream_that_is_not_a_list_is_internal(clock: FakeClock) -> None:
    error = await _fails("google", _google(lambda: httpx.Response(200, json={"results": []})), clock)
    assert error.code == "internal" and "searchStream response is an object, expected a list" in error.message


async def test_meta_error_messages_are_scrubbed_of_tokens(clock: FakeClock) -> None:
    message = f"Malformed access token {META_TOKEN} (sent as access_token={META_TOKEN}&x=1)"
    body = {"error": {"message": message, "type": "OAuthException", "code": 190}}
    error = await _fails("meta", lambda req: httpx.Response(400, json=body), clock)
    assert error.code == "token_revoked"
    assert "[redacted]" in error.message


async def test_meta_business_use_case_usage_gives_the_delay(clock: FakeClock) -> None:
    body = {"error": {"message": "too many calls", "type": "OAuthException", "code": 80004}}
    usage = json.dumps({"1001": [{"type": "ads_management", "estimated_time_to_regain_access": 3}]})
    answer = httpx.Response(400, json=body, headers={"x-business-use-case-usage": usage})
    error = await _fails("meta", lambda req: answer, clock)
    assert (error.code, error.retry_after_s) == ("rate_limited", 180.0)


@pytest.mark.parametrize(
    ("code", "subcode", "status", "expected"),
    [
        (100, None, 400, "invalid_request"),
        (200, None, 403, "token_revoked"),
        (102, None, 400, "token_revoked"),
        (803, None, 400, "not_found"),
        (2, None, 503, "transient"),
        (1, 99, 500, "transient"),
    ],
)
async def test_meta_errors_map_to_codes(
    clock: FakeClock, code: int, subcode: int | None, status: int, expected: str
) -> None:
    error_body: dict[str, Any] = {"message": "no", "type": "OAuthException", "code": code}
    if subcode is not None:
        error_body["error_subcode"] = subcode
    error = await _fails("meta", lambda req: httpx.Response(status, json={"error": error_body}), clock)
    assert (error.code, error.status) == (expected, status)


async def test_meta_data_of_the_wrong_type_is_internal(clock: FakeClock) -> None:
    error = await _fails("meta", lambda req: httpx.Response(200, json={"data": {"rows": []}}), clock)
    assert error.code == "internal"
    assert error.message == "meta insights: data is an object, expected a list"


async def test_meta_paging_that_repeats_a_cursor_is_internal(clock: FakeClock) -> None:
    row = {"campaign_id": "1", "campaign_name": "c", "date_start": "2024-05-30", "impressions": "1"}
    page = {"data": [row], "paging": {"cursors": {"after": "c1"}, "next": "http://elsewhere/next"}}
    error = await _fails("meta", lambda req: httpx.Response(200, json=page), clock)
    assert error.code == "internal" and "repeats a cursor" in error.message


def _envelope(code: int, message: str = "", data: Any = None, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, json={"code": code, "message": message, "request_id": "r", "data": data or {}}
    )


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (40002, "page_size: Must be at most 1000.", "invalid_request"),
        (40102, "Access token has expired.", "token_revoked"),
        (50002, "Internal error.", "transient"),
        (61000, "Something new.", "internal"),
    ],
)
async def test_tiktok_codes_map_to_codes(clock: FakeClock, code: int, message: str, expected: str) -> None:
    error = await _fails("tiktok", lambda req: _envelope(code, message), clock)
    assert error.code == expected
    assert f"code {code}" in error.message


async def test_tiktok_list_of_the_wrong_type_is_internal(clock: FakeClock) -> None:
    answer = _envelope(0, "OK", {"list": "nope", "page_info": {"total_page": 1}})
    error = await _fails("tiktok", lambda req: answer, clock)
    assert error.code == "internal"
    assert error.message == "tiktok report: data.list is a string, expected a list"


async def test_tiktok_row_of_the_wrong_type_names_the_row(clock: FakeClock) -> None:
    good = {"dimensions": {"campaign_id": "1", "stat_time_day": "2024-05-30 00:00:00"}, "metrics": {}}
    good["metrics"] = {"campaign_name": "c", "impressions": "10", "spend": "1.00"}
    bad = {"dimensions": {"campaign_id": "2", "stat_time_day": "yesterday"}, "metrics": good["metrics"]}
    answer = _envelope(0, "OK", {"list": [good, bad], "page_info": {"total_page": 1}})
    no_campaigns = _envelope(0, "OK", {"list": [], "page_info": {"total_page": 0}})

    def handle(req: httpx.Request) -> httpx.Response:
        return no_campaigns if req.url.path.endswith("/campaign/get/") else answer

    error = await _fails("tiktok", handle, clock)
    assert error.code == "internal"
    assert "tiktok report: row 1: dimensions.stat_time_day is 'yesterday'" in error.message


async def test_tiktok_envelope_without_a_code_is_internal(clock: FakeClock) -> None:
    error = await _fails("tiktok", lambda req: httpx.Response(200, json={"data": {}}), clock)
    assert error.code == "internal" and "not a TikTok envelope" in error.message
