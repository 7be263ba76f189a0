"""Sandbox faults on every platform, each mapped to its typed code, no token in any message."""

from __future__ import annotations

import socket

import pytest

from deneva.adapters import PlatformError, adapters_for
from deneva.adapters.base import Platform
from deneva.adapters.google import GoogleAds
from tests.adapters.conftest import (
    PLATFORMS,
    FakeClock,
    Sandbox,
    assert_no_secrets,
    creds,
    fetch_error,
    request,
    sandbox_config,
)

RATE_LIMIT_STATUS = {"google": 429, "meta": 400, "tiktok": 200}


async def _error(sandbox: Sandbox, adapter: Platform, platform: str) -> PlatformError:
    error = await fetch_error(adapter, creds(platform), request(platform))
    assert error.platform == platform
    assert_no_secrets(error, *await sandbox.issued(platform))
    return error


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_rate_limit_is_rate_limited_with_its_retry_after(
    sandbox: Sandbox, adapters: dict[str, Platform], platform: str
) -> None:
    await sandbox.faults(platform, {"rate_limit": {"next": 1, "retry_after_s": 7}})
    error = await _error(sandbox, adapters[platform], platform)
    assert (error.code, error.retry_after_s, error.status) == (
        "rate_limited",
        7.0,
        RATE_LIMIT_STATUS[platform],
    )
    data = await adapters[platform].fetch_report(
        creds(platform), request(platform)
    )  # the fault was for one call
    assert data.rows


@pytest.mark.parametrize("meta_code", [4, 17, 613, 80000])
async def test_every_meta_rate_limit_code_is_rate_limited(
    sandbox: Sandbox, adapters: dict[str, Platform], meta_code: int
) -> None:
    await sandbox.faults("meta", {"rate_limit": {"next": 1, "retry_after_s": 120, "meta_code": meta_code}})
    error = await _error(sandbox, adapters["meta"], "meta")
    assert (error.code, error.retry_after_s) == ("rate_limited", 120.0)
    assert f"code {meta_code}" in error.message


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_server_errors_are_transient(
    sandbox: Sandbox, adapters: dict[str, Platform], platform: str, status: int
) -> None:
    await sandbox.faults(platform, {"server_error": {"next": 1, "status": status}})
    error = await _error(sandbox, adapters[platform], platform)
    assert (error.code, error.status, error.retry_after_s) == ("transient", status, None)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_hang_past_the_request_timeout_is_transient(
    sandbox: Sandbox, clock: FakeClock, platform: str
) -> None:
    adapters = adapters_for(sandbox_config(sandbox.url, clock, request_timeout_s=0.25))
    await sandbox.faults(platform, {"timeout": {"next": 1, "hang_s": 5.0}})
    error = await _error(sandbox, adapters[platform], platform)
    assert error.code == "transient" and error.status is None
    assert "timed out" in error.message


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_the_platforms_deadline_exceeded_answer_is_transient(
    sandbox: Sandbox, adapters: dict[str, Platform], platform: str
) -> None:
    await sandbox.faults(platform, {"timeout": {"next": 1, "hang_s": 0}})
    error = await _error(sandbox, adapters[platform], platform)
    assert (error.code, error.status) == ("transient", 504)


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_the_whole_operation_has_a_deadline(sandbox: Sandbox, clock: FakeClock, platform: str) -> None:
    adapters = adapters_for(sandbox_config(sandbox.url, clock, operation_timeout_s=0.05))
    await sandbox.faults(platform, {"latency_ms": 1000})
    error = await _error(sandbox, adapters[platform], platform)
    assert error.code == "transient"
    assert "no answer within 0.05 s" in error.message


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_truncated_json_is_internal(
    sandbox: Sandbox, adapters: dict[str, Platform], platform: str
) -> None:
    await sandbox.faults(platform, {"malformed": {"next": 1, "kind": "truncated"}})
    error = await _error(sandbox, adapters[platform], platform)
    assert error.code == "internal"
    assert "response is truncated or invalid JSON (application/json, " in error.message


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_an_html_page_under_200_is_internal(
    sandbox: Sandbox, adapters: dict[str, Platform], platform: str
) -> None:
    await sandbox.faults(platform, {"malformed": {"next": 1, "kind": "html", "status": 200}})
    error = await _error(sandbox, adapters[platform], platform)
    assert (error.code, error.status) == ("internal", 200)
    endpoint = {"google": "searchStream", "meta": "insights", "tiktok": "report"}[platform]
    assert error.message.startswith(f"{platform} {endpoint}: response is not JSON (text/html, ")
    assert error.message.endswith(" bytes)")


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_proxys_html_error_page_under_502_is_transient(
    sandbox: Sandbox, adapters: dict[str, Platform], platform: str
) -> None:
    await sandbox.faults(platform, {"malformed": {"next": 1, "kind": "html", "status": 502}})
    error = await _error(sandbox, adapters[platform], platform)
    assert (error.code, error.status) == ("transient", 502)
    assert "HTTP 502, response is not JSON (text/html, " in error.message


async def test_google_token_endpoint_faults_are_typed_too(
    sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    plan = {
        "endpoints": ["token"],
        "rate_limit": {"next": 1, "retry_after_s": 3},
        "server_error": {"next": 1},
    }
    await sandbox.faults("google", plan)
    first = await _error(sandbox, adapters["google"], "google")  # server_error is tried before rate_limit
    assert (first.code, first.status) == ("transient", 503)
    second = await _error(sandbox, adapters["google"], "google")
    assert (second.code, second.retry_after_s) == ("rate_limited", 3.0)
    assert await sandbox.calls("google", "searchStream") == 0


@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_refused_connection_is_transient(clock: FakeClock, platform: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    adapter = adapters_for(sandbox_config(f"http://127.0.0.1:{port}", clock))[platform]
    error = await fetch_error(adapter, creds(platform), request(platform))
    assert error.code == "transient"
    assert "connection failed (ConnectError" in error.message


async def test_an_unconfigured_platform_fails_before_any_call(sandbox: Sandbox, clock: FakeClock) -> None:
    google = GoogleAds(sandbox_config(sandbox.url, clock, google_base_url=""))
    error = await fetch_error(google, creds("google"), request("google"))
    assert error.code == "invalid_request" and "google_base_url is not configured" in error.message
    assert await sandbox.calls("google", "token") == 0
