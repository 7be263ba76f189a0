"""Report analyses: pure functions from platform data to compact results an LLM can act on.

Each analysis takes normalised rows (`deneva.reports.inputs`) and returns a frozen
result whose `to_json()` is a small JSON-able dict: `report`, `has_data`, a
one-line `summary`, the key numbers and ranked lists of at most 20 items. None
reads a database, the network or the clock ("today" is an argument).
"""

from deneva.reports.account_health import AccountHealth, account_health
from deneva.reports.auction_insights import AuctionInsights, auction_insights
from deneva.reports.budget_optimizer import BudgetOptimizer, budget_optimizer
from deneva.reports.inputs import (
    AssetGroupRow,
    AuctionRow,
    CampaignDay,
    KeywordRow,
    ReportInputError,
    SearchTermRow,
    rows_from_dicts,
)
from deneva.reports.pmax_breakdown import PmaxBreakdown, pmax_breakdown
from deneva.reports.quality_score import QualityScore, quality_score
from deneva.reports.search_term_waste import SearchTermWaste, search_term_waste
from deneva.reports.weekly_anomaly import Band, WeeklyAnomaly, weekly_anomaly

__all__ = [
    "AccountHealth",
    "AssetGroupRow",
    "AuctionInsights",
    "AuctionRow",
    "Band",
    "BudgetOptimizer",
    "CampaignDay",
    "KeywordRow",
    "PmaxBreakdown",
    "QualityScore",
    "ReportInputError",
    "SearchTermRow",
    "SearchTermWaste",
    "WeeklyAnomaly",
    "account_health",
    "auction_insights",
    "budget_optimizer",
    "pmax_breakdown",
    "quality_score",
    "rows_from_dicts",
    "search_term_waste",
    "weekly_anomaly",
]
