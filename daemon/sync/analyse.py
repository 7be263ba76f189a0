"""From an adapter's normalised rows to the analysis the cache stores and tools return."""

from __future__ import annotations

from datetime import date
from typing import Any

from deneva import reports
from deneva.reports.inputs import ReportInputError

RANGE_DAYS = {"last_7_days": 7, "last_30_days": 30, "last_90_days": 90}


class AnalysisError(ReportInputError):
    """Rows that do not fit the analysis (a platform answered something unexpected)."""


def analyse(report_type: str, rows: list[dict[str, Any]], today: date, date_range: str) -> dict[str, Any]:
    """The compact JSON analysis of one report (SPEC §8: analyses, not raw dumps)."""
    days = RANGE_DAYS.get(date_range)
    if days is None:
        raise AnalysisError(f"date range {date_range!r}: expected one of {', '.join(RANGE_DAYS)}")
    result: Any
    if report_type == "account_health":
        result = reports.account_health(reports.rows_from_dicts(reports.CampaignDay, rows), today, days)
    elif report_type == "budget_optimizer":
        result = reports.budget_optimizer(reports.rows_from_dicts(reports.CampaignDay, rows))
    elif report_type == "weekly_anomaly":
        result = reports.weekly_anomaly(reports.rows_from_dicts(reports.CampaignDay, rows), today)
    elif report_type == "search_term_waste":
        result = reports.search_term_waste(
            reports.rows_from_dicts(reports.SearchTermRow, rows), period_days=days
        )
    elif report_type == "quality_score":
        result = reports.quality_score(reports.rows_from_dicts(reports.KeywordRow, rows))
    elif report_type == "auction_insights":
        result = reports.auction_insights(reports.rows_from_dicts(reports.AuctionRow, rows))
    elif report_type == "pmax_breakdown":
        result = reports.pmax_breakdown(reports.rows_from_dicts(reports.AssetGroupRow, rows))
    else:
        raise AnalysisError(f"report type {report_type!r}: no analysis of that name")
    analysed: dict[str, Any] = result.to_json()
    return analysed
