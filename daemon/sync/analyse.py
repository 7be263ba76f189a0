"""From an adapter's normalised rows to the analysis the cache stores and tools return."""

from __future__ import annotations

from datetime import date
from typing import Any

from deneva import catalog, reports
from deneva.reports.inputs import CampaignDay, ReportInputError


class AnalysisError(ReportInputError):
    """Rows that do not fit the analysis (a platform answered something unexpected)."""


def _in_range(days: list[CampaignDay], date_range: str, today: date) -> list[CampaignDay]:
    window = catalog.range_window(date_range, today)
    return [d for d in days if window.start <= d.date <= window.end]


def analyse(
    report_type: str,
    rows: list[dict[str, Any]],
    today: date,
    date_range: str,
    *,
    currency: str | None = None,
) -> dict[str, Any]:
    """The compact JSON analysis of one report (SPEC §8: analyses, not raw dumps).

    `rows` cover the report's fetch window (`deneva.catalog.fetch_window`): reports that
    compare read the history before the range from them. `currency` (the account's, as
    the platform named it) is kept in the analysis, so that sums across accounts never
    mix currencies.
    """
    days = catalog.DATE_RANGES.get(date_range)
    if days is None:
        raise AnalysisError(f"date range {date_range!r}: expected one of {', '.join(catalog.DATE_RANGES)}")
    result: Any
    if report_type == "account_health":
        result = reports.account_health(reports.rows_from_dicts(reports.CampaignDay, rows), today, days)
    elif report_type == "budget_optimizer":
        campaign_days = reports.rows_from_dicts(reports.CampaignDay, rows)
        result = reports.budget_optimizer(_in_range(campaign_days, date_range, today))
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
    if currency is not None:
        analysed["currency"] = currency
    return analysed
