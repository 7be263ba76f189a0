"""The console's pure parts (`deneva.console`): what counts as a secret and is redacted,
how a filter's time is read, the SVG bar chart's geometry; and the sign-in's token check
(`deneva.console_auth`)."""

from __future__ import annotations

import pytest

from deneva.console import (
    ConsoleInputError,
    bar_chart,
    parse_time,
    redact,
    redact_text,
    secret_key,
    shown_json,
)
from deneva.console_auth import ConsoleAuth
from deneva.secrets import Secret


def test_keys_that_hold_secrets_are_redacted_and_those_that_name_when_or_which_are_not() -> None:
    for name in (
        "access_token",
        "refreshToken",
        "id_token",
        "client_secret",
        "password",
        "Authorization",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "cookie",
        "code_verifier",
        "private_key",
        "credentials",
    ):
        assert secret_key(name), name
    for name in (
        "token_version",
        "access_token_expires_at",
        "credential_id",
        "tokens_count",
        "refresh_at",
        "platform",
        "account_id",
        "tenant_id",
        "report_type",
        "expires_ms",
    ):
        assert not secret_key(name), name


def test_redaction_reaches_nested_values_and_secret_formats_anywhere() -> None:
    value = {
        "tenant_id": "t-1",
        "empty_token": "",  # nothing to hide: shown as empty
        "nested": [{"password": "p@ss"}, {"refresh_token": None}],
        "note": "saw dnv_0a1b2c3d_abcdefghijklmnopqrstuvwxyz and EAAB" + "x" * 30 + " and 1//0gAbCdEfGhIjKl",
        "count": 3,
    }
    shown = redact(value)
    assert shown["tenant_id"] == "t-1" and shown["empty_token"] == "" and shown["count"] == 3
    assert shown["nested"] == [{"password": "[redacted]"}, {"refresh_token": None}]
    assert shown["note"] == "saw [redacted] and [redacted] and [redacted]"
    assert redact_text("Authorization: Bearer abcdefgh12345678") == "Authorization: [redacted]"
    assert "more characters" in shown_json({"x": "y" * 100}, limit=20)


def test_filter_times_are_iso_8601_in_utc_unless_an_offset_says_otherwise() -> None:
    assert parse_time("from", "2026-12-03T10:00") == 1_796_292_000.0
    assert parse_time("from", "2026-12-03T11:00+01:00") == 1_796_292_000.0
    for bad in ("yesterday", "2026-13-01T00:00", "", "1796292000"):
        with pytest.raises(ConsoleInputError, match="from: expected a time like"):
            parse_time("from", bad)
    for far in ("0001-01-01T00:00+14:00", "9999-12-31T23:59-14:00", "1900-01-01T00:00"):
        with pytest.raises(ConsoleInputError, match="from: expected a year from 1971 to 8999"):
            parse_time("from", far)


def test_the_bar_chart_scales_to_its_peak_and_fills_missing_buckets_with_zero() -> None:
    chart = bar_chart("runs", {900.0: 2.0, 2700.0: 4.0}, 0.0, 900, 4, "runs", width=400, height=104)
    heights = [b.height for b in chart.bars]
    assert heights == [0.0, 50.0, 0.0, 100.0] and chart.peak == 4.0 and chart.total == 6.0
    assert [b.x for b in chart.bars] == [0.0, 100.0, 200.0, 300.0]
    assert all(b.y + b.height == 104 for b in chart.bars)  # bars stand on the baseline
    assert chart.bars[3].label == "00:45 4 runs"
    empty = bar_chart("runs", {}, 0.0, 900, 4, "runs")
    assert empty.peak == 0.0 and {b.height for b in empty.bars} == {0.0}


def test_a_token_signs_in_as_its_role_only() -> None:
    auth = ConsoleAuth(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Secret("DENEVA_ADMIN_TOKEN", "admin-token-0123456789"),
        Secret("DENEVA_ADMIN_READONLY_TOKEN", "readonly-token-0123456789"),
    )
    assert auth.role_of("admin-token-0123456789") == "admin"
    assert auth.role_of(" readonly-token-0123456789\n") == "readonly"
    for wrong in ("", "admin-token-012345678", "readonly-token-0123456789x", "ADMIN-TOKEN-0123456789"):
        assert auth.role_of(wrong) is None
    alone = ConsoleAuth(None, None, Secret("DENEVA_ADMIN_TOKEN", "admin-token-0123456789"))  # type: ignore[arg-type]
    assert alone.role_of("admin-token-0123456789") == "admin" and not alone.has_readonly
    assert alone.role_of("readonly-token-0123456789") is None
