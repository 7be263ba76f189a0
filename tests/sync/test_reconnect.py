"""When a credential needs the operator to connect it again (issue 12 item 4)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from deneva.sync.reconnect import health_status, log_reconnect_needed, reconnect_needed

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp()
DAY = 86_400.0


def at(offset_s: float) -> datetime:
    return datetime.fromtimestamp(NOW + offset_s, UTC)


def test_a_revoked_credential_needs_a_reconnect_on_every_platform() -> None:
    for platform in ("google", "meta", "tiktok"):
        found = reconnect_needed(platform, "acme", "123", "token_revoked", None, NOW)
        assert found is not None
        assert found.command == f"deneva connect {platform} --tenant acme --account 123"
        assert health_status(False, found) == "reconnect needed"


def test_a_meta_token_needs_a_reconnect_within_7_days_of_its_expiry_and_not_before() -> None:
    assert reconnect_needed("meta", "acme", "1", None, at(7 * DAY + 60), NOW) is None
    soon = reconnect_needed("meta", "acme", "1", None, at(7 * DAY - 60), NOW)
    assert soon is not None and "expires 2026-12-10" in soon.reason
    gone = reconnect_needed("meta", "acme", "1", None, at(-60), NOW)
    assert gone is not None and "expired" in gone.reason


def test_other_failures_and_expiring_google_tokens_do_not_ask_for_a_reconnect() -> None:
    # A Google access token expires hourly and is refreshed; a rate limit passes.
    assert reconnect_needed("google", "acme", "1", None, at(60), NOW) is None
    found = reconnect_needed("meta", "acme", "1", "rate_limited", at(30 * DAY), NOW)
    assert found is None
    assert health_status(False, None) == "unhealthy" and health_status(True, None) == "healthy"


def test_the_log_line_names_the_command(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="deneva.sync"):
        log_reconnect_needed("meta", "acme", "1000000001", "meta token: code 190")
    [record] = caplog.records
    assert record.getMessage() == "reconnect needed: meta account 1000000001 of acme"
    assert record.__dict__["command"] == "deneva connect meta --tenant acme --account 1000000001"
