"""Every report the adapters fetch from the sandbox turns into its analysis: the
adapters' rows and the analyses' inputs agree, end to end over real HTTP."""

from __future__ import annotations

import json

import pytest

from deneva.adapters.base import REPORT_TYPES, Platform
from deneva.sync.analyse import AnalysisError, analyse
from tests.adapters.conftest import TODAY, creds, request

CASES = [(platform, report) for platform, reports in REPORT_TYPES.items() for report in reports]


@pytest.mark.parametrize(("platform", "report_type"), CASES)
async def test_fetched_rows_become_a_compact_analysis(
    adapters: dict[str, Platform], platform: str, report_type: str
) -> None:
    date_range = "last_30_days"
    data = await adapters[platform].fetch_report(creds(platform), request(platform, report_type, date_range))
    result = analyse(report_type, data.rows, TODAY, date_range)
    text = json.dumps(result, allow_nan=False)
    assert result["has_data"] is True, result["summary"]
    assert "\n" not in result["summary"] and len(text) < 20_000


def test_unknown_report_or_range_is_named() -> None:
    with pytest.raises(AnalysisError, match="report type 'nope'"):
        analyse("nope", [], TODAY, "last_7_days")
    with pytest.raises(AnalysisError, match="date range 'yesterday'"):
        analyse("account_health", [], TODAY, "yesterday")
