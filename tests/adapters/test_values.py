"""The adapters' values, registry and error taxonomy, without a network."""

from __future__ import annotations

import pickle
from datetime import date, datetime

import attrs
import pytest

from deneva.adapters import (
    DATE_RANGES,
    REPORT_SCHEMAS,
    REPORT_TYPES,
    Credentials,
    PlatformConfig,
    PlatformError,
    ReportData,
    ReportRequest,
    TokenGrant,
    adapter_for,
    adapters_for,
    check_report,
)
from deneva.adapters.base import date_window
from deneva.adapters.errors import scrub
from deneva.adapters.google import GoogleAds
from deneva.adapters.meta import MetaAds
from deneva.adapters.rows import ROW_FIELDS
from deneva.adapters.tiktok import TikTokAds
from deneva.errors import DenevaError
from tests.adapters.conftest import TODAY, assert_no_secrets, creds, request

# Seed 000 §B1: the report types of the cadence table.
SEED_REPORT_TYPES = {
    "account_health",
    "budget_optimizer",
    "search_term_waste",
    "quality_score",
    "pmax_breakdown",
    "weekly_anomaly",
    "auction_insights",
}


def test_report_types_follow_seed_000() -> None:
    assert set(REPORT_TYPES["google"]) == SEED_REPORT_TYPES == set(REPORT_SCHEMAS)
    for platform in ("meta", "tiktok"):
        assert set(REPORT_TYPES[platform]) == {"account_health", "budget_optimizer", "weekly_anomaly"}
    assert set(REPORT_SCHEMAS.values()) == set(ROW_FIELDS)
    assert list(DATE_RANGES) == ["last_7_days", "last_30_days", "last_90_days"]


def test_date_ranges_are_whole_days_ending_yesterday() -> None:
    assert date_window("last_7_days", TODAY) == (date(2024, 5, 25), date(2024, 5, 31))
    assert date_window("last_90_days", TODAY) == (date(2024, 3, 3), date(2024, 5, 31))
    health = request("google", "account_health", "last_30_days")
    assert health.period == (date(2024, 5, 2), date(2024, 5, 31))


def test_each_report_fetches_the_history_its_comparison_needs() -> None:
    def window(report_type: str, date_range: str) -> tuple[date, date]:
        return request("google", report_type, date_range).window

    end = date(2024, 5, 31)
    # Account health: the previous period too, and never less than two weeks.
    assert window("account_health", "last_7_days") == (date(2024, 5, 18), end)
    assert window("account_health", "last_30_days") == (date(2024, 4, 2), end)
    assert window("account_health", "last_90_days") == (date(2023, 12, 4), end)
    # Weekly anomaly: the last 7 days and the 4 weeks before them (35 days), or the range if longer.
    assert window("weekly_anomaly", "last_7_days") == (date(2024, 4, 27), end)
    assert window("weekly_anomaly", "last_30_days") == (date(2024, 4, 27), end)
    # Period sums fetch their range alone.
    for report_type in ("budget_optimizer", "search_term_waste", "quality_score", "pmax_breakdown"):
        assert window(report_type, "last_30_days") == (date(2024, 5, 2), end)


@pytest.mark.parametrize(
    ("platform", "report_type", "date_range", "words"),
    [
        ("bing", "account_health", "last_7_days", "unknown platform 'bing'; one of google, meta, tiktok"),
        ("google", "roas_forecast", "last_7_days", "google has no report type 'roas_forecast'"),
        ("meta", "search_term_waste", "last_7_days", "the Meta API has no search terms"),
        ("meta", "auction_insights", "last_30_days", "the Meta API has no auction insights"),
        ("tiktok", "quality_score", "last_30_days", "tiktok serves account_health, budget_optimizer"),
        ("google", "account_health", "last_14_days", "unknown date range 'last_14_days'; one of last_7_days"),
    ],
)
def test_unknown_platforms_report_types_and_ranges_are_invalid_requests(
    platform: str, report_type: str, date_range: str, words: str
) -> None:
    with pytest.raises(PlatformError) as info:
        ReportRequest(platform, "1", report_type, date_range, today=TODAY)
    assert info.value.code == "invalid_request" and words in info.value.message
    with pytest.raises(PlatformError) as again:
        check_report(platform, report_type, date_range)
    assert again.value.message == info.value.message


def test_a_request_needs_a_date_and_an_account() -> None:
    with pytest.raises(PlatformError, match="today must be a datetime.date"):
        ReportRequest("google", "1", "account_health", "last_7_days", today=datetime(2024, 6, 1))  # type: ignore[arg-type]
    with pytest.raises(PlatformError, match="account_id"):
        ReportRequest("google", " ", "account_health", "last_7_days", today=TODAY)


def test_the_registry_has_one_adapter_per_platform() -> None:
    adapters = adapters_for(PlatformConfig())
    assert [type(a) for a in adapters.values()] == [GoogleAds, MetaAds, TikTokAds]
    assert all(name == adapter.name for name, adapter in adapters.items())
    assert adapter_for(adapters, "meta") is adapters["meta"]
    with pytest.raises(PlatformError) as info:
        adapter_for(adapters, "snapchat")
    assert info.value.code == "invalid_request"


async def test_an_adapter_refuses_another_platforms_request_or_credentials() -> None:
    google = adapters_for(PlatformConfig.for_sandbox("http://127.0.0.1:9"))["google"]
    with pytest.raises(PlatformError, match="google adapter asked for a meta report"):
        await google.fetch_report(creds("google"), request("meta"))
    with pytest.raises(PlatformError, match="given meta credentials"):
        await google.fetch_report(creds("meta"), request("google"))
    with pytest.raises(PlatformError, match="another account"):
        await google.fetch_report(creds("google", "9999999999"), request("google"))


async def test_the_default_config_points_nowhere() -> None:
    for platform, adapter in adapters_for(PlatformConfig()).items():
        with pytest.raises(PlatformError) as info:
            await adapter.fetch_report(creds(platform), request(platform))
        assert info.value.code == "invalid_request"
        assert f"{platform}_base_url is not configured" in info.value.message


def test_config_validates_its_numbers() -> None:
    with pytest.raises(ValueError, match="tiktok_max_days"):
        PlatformConfig(tiktok_max_days=31)
    with pytest.raises(ValueError, match="request_timeout_s"):
        PlatformConfig(request_timeout_s=0)


def test_reprs_never_show_tokens_or_secrets() -> None:
    credentials = Credentials("google", "1", refresh_token="refresh-secret-1", access_token="access-secret-1")
    grant = TokenGrant("access-secret-2", 1.0, "refresh-secret-2")
    config = PlatformConfig.for_sandbox("http://127.0.0.1:1")
    data = ReportData("google", "1", "account_health", "last_7_days", [{"a": 1}], 1, 1, refreshed=grant)
    shown = " ".join(repr(v) for v in (credentials, grant, config, data)) + str(credentials)
    for secret in ("refresh-secret-1", "access-secret-1", "access-secret-2", "refresh-secret-2"):
        assert secret not in shown
    assert_no_secrets(shown)
    assert "account_id='1'" in repr(credentials) and "<1 rows>" in repr(data)


def test_credentials_take_a_grant() -> None:
    old = Credentials("google", "1", refresh_token="r", access_token="a", access_token_expires_at=5.0)
    new = old.with_grant(TokenGrant("b", 10.0))
    assert (new.access_token, new.access_token_expires_at, new.refresh_token) == ("b", 10.0, "r")
    assert old.with_grant(TokenGrant("c", None, "r2")).refresh_token == "r2"
    assert attrs.evolve(new, platform="meta").platform == "meta"


def test_platform_error_codes_and_fields() -> None:
    error = PlatformError("rate_limited", "meta", "meta insights: slow down", status=400, retry_after_s=60.0)
    assert isinstance(error, DenevaError) and isinstance(error, Exception)
    assert (error.code, error.platform, error.status) == ("rate_limited", "meta", 400)
    assert error.retry_after_s == 60.0
    assert str(error) == "meta insights: slow down"
    assert PlatformError("transient", "meta", "x", retry_after_s=5.0).retry_after_s is None
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.status) == ("rate_limited", str(error), 400)
    assert copy.retry_after_s == 60.0
    with pytest.raises(ValueError, match="unknown platform error code"):
        PlatformError("exploded", "meta", "x")  # type: ignore[arg-type]


def test_scrub_removes_tokens_parameters_and_bearer_credentials() -> None:
    text = (
        "GET https://graph.facebook.com/v19.0/act_1/insights?access_token=EAAabc123&fields=spend "
        "Authorization: Bearer ya29.a0AfH6SMBx header Access-Token: act.0123456789 "
        "client_secret=shh refresh_token=1//xyz known-secret-value"
    )
    clean = scrub(text, ["known-secret-value"])
    for leaked in ("EAAabc123", "ya29.a0AfH6SMBx", "act.0123456789", "shh", "1//xyz", "known-secret-value"):
        assert leaked not in clean
    assert "fields=spend" in clean
    assert len(scrub("x" * 2000)) == 500
