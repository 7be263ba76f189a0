"""Meta adapter against the sandbox: campaign days through cursor paging, long-lived tokens."""

from __future__ import annotations

import io
import logging
import math

import pytest

from deneva.adapters import Credentials, PlatformError, adapters_for
from deneva.adapters.base import Platform
from deneva.adapters.meta import MetaAds, account_node
from deneva.logs import setup_logging
from tests.adapters import truth
from tests.adapters.conftest import (
    ACCOUNTS,
    META_TOKEN,
    FakeClock,
    Sandbox,
    assert_no_secrets,
    assert_schema,
    creds,
    fetch_error,
    request,
    sandbox_config,
)

_STATUS = {"ENABLED": "ENABLED", "PAUSED": "PAUSED", "REMOVED": "REMOVED"}


@pytest.mark.parametrize("date_range", ["last_7_days", "last_90_days"])
async def test_campaign_days_match_the_account_day_by_day(
    adapters: dict[str, Platform], date_range: str
) -> None:
    data = await adapters["meta"].fetch_report(creds("meta"), request("meta", "account_health", date_range))
    expected = truth.campaign_days("meta", date_range, "account_health")
    assert_schema("campaign_day", data.rows)
    assert {(r["date"], r["campaign_id"]) for r in data.rows} == set(expected)
    assert data.fetched_rows == len(data.rows) == len(expected)
    assert data.currency == truth.account("meta").currency
    campaigns = {c.id: c for c in truth.account("meta").campaigns}
    for row in data.rows:
        m = expected[(row["date"], row["campaign_id"])]
        c = campaigns[row["campaign_id"]]
        assert (row["impressions"], row["clicks"]) == (m.impressions, m.clicks)
        assert row["cost"] == pytest.approx(m.cost_micros / 1e6, abs=0.006)
        assert row["conversions"] == m.conversions  # purchases or leads, never both
        purchases = 0.0 if c.objective == "OUTCOME_LEADS" else m.conversions_value
        assert row["conversion_value"] == pytest.approx(purchases, abs=0.006)
        assert (row["campaign_name"], row["campaign_type"]) == (c.name, c.objective)
        assert row["status"] == _STATUS[c.status]
        assert row["daily_budget"] == pytest.approx(c.daily_budget, abs=0.006)
        assert row["budget_lost_share"] is None
    assert data.rows == sorted(data.rows, key=lambda r: (r["date"], r["campaign_id"]))


async def test_cursor_paging_is_followed_to_the_last_page(sandbox: Sandbox, clock: FakeClock) -> None:
    meta = MetaAds(sandbox_config(sandbox.url, clock, meta_page_size=7))
    data = await meta.fetch_report(creds("meta"), request("meta", "weekly_anomaly", "last_30_days"))
    expected = truth.campaign_days("meta", "last_30_days", "weekly_anomaly")
    assert len(data.rows) == len(expected) > 7
    assert len({(r["date"], r["campaign_id"]) for r in data.rows}) == len(data.rows)  # no page twice
    insight_pages = math.ceil(len(expected) / 7)
    campaign_pages = math.ceil(len(truth.account("meta").campaigns) / 7)
    assert await sandbox.calls("meta", "insights") == insight_pages
    assert await sandbox.calls("meta", "campaigns") == campaign_pages
    assert data.api_calls == insight_pages + campaign_pages


async def test_exchange_for_a_long_lived_token_and_use_it(
    sandbox: Sandbox, adapters: dict[str, Platform], clock: FakeClock
) -> None:
    meta = adapters["meta"]
    assert isinstance(meta, MetaAds)
    grant = await meta.exchange_long_lived(META_TOKEN)
    assert grant.access_token != META_TOKEN and grant.access_token in await sandbox.issued("meta")
    assert grant.expires_at == clock.now + 5_184_000
    assert grant.access_token not in repr(grant)
    long_lived = creds("meta").with_grant(grant)
    assert long_lived.access_token_expires_at == grant.expires_at
    data = await meta.fetch_report(long_lived, request("meta"))
    assert data.rows
    refreshed = await meta.refresh_token(long_lived)
    assert refreshed.access_token not in (grant.access_token, META_TOKEN)


async def test_revoked_and_expired_tokens_are_token_revoked(
    sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    meta = adapters["meta"]
    await sandbox.token_action("expire", "meta", META_TOKEN)
    error = await fetch_error(meta, creds("meta"), request("meta"))
    assert (error.code, error.status) == ("token_revoked", 400)
    assert "190/463" in error.message
    await sandbox.token_action("revoke", "meta", META_TOKEN)
    error = await fetch_error(meta, creds("meta"), request("meta"))
    assert error.code == "token_revoked" and "190/460" in error.message
    with pytest.raises(PlatformError) as info:
        await meta.refresh_token(creds("meta"))
    assert info.value.code == "token_revoked"
    assert_no_secrets(info.value)


async def test_missing_token_is_token_revoked_without_a_call(
    sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    error = await fetch_error(adapters["meta"], Credentials("meta", ACCOUNTS["meta"]), request("meta"))
    assert error.code == "token_revoked"
    assert await sandbox.calls("meta", "insights") == 0


async def test_an_account_that_is_not_an_ad_account_is_not_found(adapters: dict[str, Platform]) -> None:
    account = "abc"
    error = await fetch_error(adapters["meta"], creds("meta", account), request("meta", account_id=account))
    assert (error.code, error.status) == ("not_found", 400)
    assert "100/33" in error.message


def test_account_nodes() -> None:
    assert account_node("1001") == account_node("act_1001") == "act_1001"
    with pytest.raises(PlatformError) as info:
        account_node("1001/insights?x=")
    assert info.value.code == "invalid_request"


async def test_an_expired_version_is_invalid_request_naming_the_key(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    meta = adapters_for(sandbox_config(sandbox.url, clock, meta_api_version="v24.0"))["meta"]
    error = await fetch_error(meta, creds("meta"), request("meta"))
    assert (error.code, error.status) == ("invalid_request", 400)
    assert "code 2635" in error.message
    assert "Marketing API v24.0 is not served: set meta_api_version (DENEVA_META_API_VERSION) to v27.0" in (
        error.message
    )


@pytest.mark.parametrize("level", ["info", "debug"])
async def test_the_http_clients_log_never_shows_the_token_in_the_url(
    adapters: dict[str, Platform], sandbox: Sandbox, level: str
) -> None:
    """Meta takes the access token in the query string; the HTTP client logs each
    request's URL at INFO. With the daemon's logging, at any level, no line holds it."""
    root = logging.getLogger()
    handlers, root_level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    out = io.StringIO()
    try:
        setup_logging("json", level, stream=out)
        await adapters["meta"].fetch_report(creds("meta"), request("meta"))
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)
    assert META_TOKEN not in out.getvalue()
