"""Truth tests: for every report, range and platform, the tool's answer over MCP (miss:
the refresh run fetches from the real sandbox over HTTP) matches what the sandbox's data
model says: period totals, previous-period totals, week-over-week changes, anomaly days.
The comparisons are filled in wherever the sandbox's 120 days of history can fill them,
and said to be impossible, in words and flags, where they cannot (a previous 90 days)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest
import trio.testing

from deneva import catalog
from deneva.db import Database
from deneva.reports import weekly_anomaly
from deneva.reports._common import Totals, pct_change
from deneva.sandbox.data import campaign_day, day_shape
from deneva.sandbox.dates import HISTORY_DAYS
from tests.adapters import conftest as adapter_fixtures
from tests.adapters import truth
from tests.adapters.conftest import ACCOUNTS, TODAY, Sandbox
from tests.mcp.test_report_tools import Env, _tenant, tool_env

sandbox = adapter_fixtures.sandbox

# Per row, how far a normalised amount may be from the model's (cents rounding on Meta and
# TikTok, Google's conversions to 2 decimals).
ROW_SLACK = 0.006


def _close(actual: float, expected: float, rows: int) -> bool:
    return math.isclose(actual, expected, abs_tol=ROW_SLACK * max(rows, 1) + 0.01)


def _assert_totals(answer: dict[str, Any], expected: Totals, rows: int, what: str) -> None:
    assert answer["impressions"] == expected.impressions, what
    assert answer["clicks"] == expected.clicks, what
    assert _close(answer["cost"], expected.cost, rows), (what, answer["cost"], expected.cost)
    assert _close(answer["conversions"], expected.conversions, rows), what


def _assert_change(answer: dict[str, float | None], new: Totals, old: Totals, what: str) -> None:
    for metric, (a, b) in {
        "spend": (new.cost, old.cost),
        "clicks": (new.clicks, old.clicks),
        "conversions": (new.conversions, old.conversions),
        "cpa": (new.cpa, old.cpa),
    }.items():
        expected = pct_change(a, b)
        assert expected is not None, (what, metric)  # the sandbox's accounts spend and convert
        got = answer[metric]
        assert got is not None and abs(got - expected) <= 0.1, (what, metric, got, expected)


def _window(date_range: str) -> tuple[Any, Any]:
    window = catalog.range_window(date_range, TODAY)
    return window.start, window.end


async def _account_health(env: Env, tenant: Any, platform: str, date_range: str) -> None:
    what = f"{platform} account_health {date_range}"
    out = await env.ok(tenant, "get_account_health", platform=platform, dateRange=date_range)
    data = out["data"]
    days = catalog.DATE_RANGES[date_range]
    start, end = _window(date_range)
    prev_start, prev_end = start - timedelta(days=days), start - timedelta(days=1)
    period = truth.normalised_days(platform, start, end)
    previous = truth.normalised_days(platform, prev_start, prev_end)
    _assert_totals(data["totals"], Totals.of(period), len(period), what)
    _assert_totals(data["previous_totals"], Totals.of(previous), len(previous), what)
    history_start = TODAY - timedelta(days=HISTORY_DAYS)
    fetched = catalog.fetch_window("account_health", date_range, TODAY)
    assert data["history_start"] == max(history_start, fetched.start).isoformat(), what
    if prev_start >= history_start:
        assert data["previous_period"]["coverage"] == "complete", what
        _assert_change(data["period_change_pct"], Totals.of(period), Totals.of(previous), what)
        assert "n/a" not in data["summary"], (what, data["summary"])
    else:  # 90 days before the last 90: more than the sandbox's 120 days
        assert data["previous_period"]["coverage"] == "partial", what
        assert all(v is None for v in data["period_change_pct"].values()), what
        flag = next(f for f in data["flags"] if f["code"] == "previous_period_partial")
        covered = (prev_end - history_start).days + 1
        assert f"({covered} of {days} days)" in flag["message"], what
        assert f"no comparison with the previous {days} days" in data["summary"], what
    # Week over week, whatever the range.
    last = truth.normalised_days(platform, TODAY - timedelta(days=7), TODAY - timedelta(days=1))
    prior = truth.normalised_days(platform, TODAY - timedelta(days=14), TODAY - timedelta(days=8))
    wow = data["week_over_week"]
    _assert_totals(wow["last_7_days"]["totals"], Totals.of(last), len(last), what)
    _assert_totals(wow["prior_7_days"]["totals"], Totals.of(prior), len(prior), what)
    assert wow["prior_7_days"]["coverage"] == "complete", what
    _assert_change(wow["change_pct"], Totals.of(last), Totals.of(prior), what)
    assert "partial_week" not in {f["code"] for f in data["flags"]}, what
    assert data["currency"] == truth.account(platform).currency


def _anomaly_key(a: dict[str, Any]) -> tuple[Any, ...]:
    return (a["scope"], a.get("campaign_id"), a["metric"], a["granularity"], a["direction"], a.get("dates"))


async def _weekly_anomaly(env: Env, tenant: Any, platform: str, date_range: str) -> None:
    what = f"{platform} weekly_anomaly {date_range}"
    out = await env.ok(tenant, "get_weekly_anomaly", platform=platform, dateRange=date_range)
    data = out["data"]
    assert data["baseline"]["coverage"] == "complete", what
    assert data["series_checked"] >= 1 and data["series_insufficient_history"] == 0, what
    assert not data["summary"].startswith("Not enough history"), (what, data["summary"])
    # The last 7 days' account totals are the model's.
    last = truth.normalised_days(platform, TODAY - timedelta(days=7), TODAY - timedelta(days=1))
    week = {w["metric"]: w for w in data["account_week"]}
    expected = Totals.of(last)
    assert _close(week["spend"]["value"], expected.cost, len(last)), what
    assert week["clicks"]["value"] == expected.clicks, what
    assert all(w["status"] != "insufficient_history" for w in data["account_week"]), what
    # Anomaly days: the analysis of the model's own days over the 4 weeks and the last 7.
    days = truth.normalised_days(platform, TODAY - timedelta(days=35), TODAY - timedelta(days=1))
    model = weekly_anomaly(days, TODAY).to_json()
    assert data["anomaly_count"] == model["anomaly_count"], what
    assert [_anomaly_key(a) for a in data["anomalies"]] == [_anomaly_key(a) for a in model["anomalies"]], what


async def _period_sums(env: Env, tenant: Any, platform: str, report_type: str, date_range: str) -> None:
    what = f"{platform} {report_type} {date_range}"
    out = await env.ok(tenant, f"get_{report_type}", platform=platform, dateRange=date_range)
    data = out["data"]
    assert data["has_data"] is True, what
    if report_type == "budget_optimizer":
        start, end = _window(date_range)
        rows = truth.normalised_days(platform, start, end)
        _assert_totals(data["account"], Totals.of(rows), len(rows), what)
        assert data["period"] == {"start": start.isoformat(), "end": end.isoformat()}, what
    elif report_type == "search_term_waste":
        terms = truth.search_terms(date_range)
        assert data["totals"]["clicks"] == sum(m.clicks for m in terms.values()), what
        cost = sum(m.cost_micros for m in terms.values()) / 1e6
        assert _close(data["totals"]["cost"], cost, len(terms)), what
    elif report_type == "quality_score":
        assert data["keywords"]["total"] == len(truth.keywords(date_range)), what
    elif report_type == "pmax_breakdown":
        groups = truth.asset_groups(date_range)
        assert data["asset_group_count"] == len(groups), what
        assert data["totals"]["clicks"] == sum(m.clicks for m in groups.values()), what
    elif report_type == "auction_insights":
        rivals = {domain for _, domain in truth.auction_domains(date_range) if domain != "You"}
        assert data["competitor_count"] == len(rivals), what
    else:  # pragma: no cover - a report type this test does not know
        raise AssertionError(report_type)


@pytest.mark.parametrize("platform", catalog.PLATFORMS)
async def test_every_report_and_range_matches_the_sandboxs_known_data(
    db: Database, sandbox: Sandbox, autojump_clock: trio.testing.MockClock, platform: str
) -> None:
    acme = await _tenant(db, "acme", (platform, ACCOUNTS[platform]))
    checked = 0
    async with tool_env(db, sandbox) as env:
        for report_type in catalog.REPORT_TYPES[platform]:
            for date_range in catalog.DATE_RANGES:
                if report_type == "account_health":
                    await _account_health(env, acme, platform, date_range)
                elif report_type == "weekly_anomaly":
                    await _weekly_anomaly(env, acme, platform, date_range)
                else:
                    await _period_sums(env, acme, platform, report_type, date_range)
                checked += 1
    assert checked == len(catalog.REPORT_TYPES[platform]) * len(catalog.DATE_RANGES)


def test_every_spend_spike_the_sandbox_injects_is_an_anomaly_day() -> None:
    """Independent of the analysis' own arithmetic: the sandbox's injected spend spikes
    (deneva.sandbox.data.day_shape) in the last 7 days, over twelve weeks of `today`s, are
    all reported as days outside the band (spend or clicks up) of their campaign."""
    spikes = 0
    for platform in catalog.PLATFORMS:
        acc = truth.account(platform)
        for weeks_back in range(12):
            today = TODAY - timedelta(days=7 * weeks_back)
            days = truth.normalised_days(platform, today - timedelta(days=35), today - timedelta(days=1))
            found = {
                (a.get("campaign_id"), day)
                for a in weekly_anomaly(days, today).to_json()["anomalies"]
                if a["granularity"] == "day" and a["direction"] == "up" and a["metric"] in ("spend", "clicks")
                for day in a["dates"]
            }
            for campaign in acc.campaigns:
                for n in range(1, 8):
                    day = today - timedelta(days=n)
                    if (
                        day_shape(acc, campaign, day).spike > 1
                        and campaign_day(acc, campaign, day).impressions
                    ):
                        spikes += 1
                        assert (campaign.id, day.isoformat()) in found, (platform, campaign.id, day)
    assert spikes >= 5  # the check is not empty
