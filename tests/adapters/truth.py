"""What the sandbox's synthetic accounts hold, computed from its data model directly.

The adapters' normalised rows are checked against these numbers: same keys, same sums.
"""

from __future__ import annotations

from datetime import date, timedelta

from deneva import catalog
from deneva.adapters.base import date_window
from deneva.reports._common import Totals
from deneva.reports.inputs import CampaignDay
from deneva.sandbox.data import (
    ZERO,
    Account,
    Measures,
    account_for,
    asset_group_days,
    auction_day,
    campaign_day,
    keyword_days,
    search_term_days,
)
from deneva.sandbox.dates import history
from tests.adapters.conftest import ACCOUNTS, TODAY


def account(platform: str) -> Account:
    return account_for(platform, ACCOUNTS[platform], 0)


def days(date_range: str, report_type: str | None = None, today: date = TODAY) -> list[date]:
    """The days of the range, or with `report_type` the days that report fetches (its
    fetch window, deneva.catalog) that the sandbox has data for (its 120 days)."""
    if report_type is None:
        start, end = date_window(date_range, today)
    else:
        window = catalog.fetch_window(report_type, date_range, today)
        start, end = max(window.start, history(today).start), window.end
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def campaign_days(
    platform: str, date_range: str, report_type: str, today: date = TODAY
) -> dict[tuple[str, str], Measures]:
    """(ISO date, campaign id) -> that day's metrics over what `report_type` fetches, for
    days with impressions."""
    acc = account(platform)
    out: dict[tuple[str, str], Measures] = {}
    for c in acc.campaigns:
        for day in days(date_range, report_type, today):
            m = campaign_day(acc, c, day)
            if m.impressions:
                out[(day.isoformat(), c.id)] = m
    return out


def search_terms(date_range: str) -> dict[tuple[str, str, str], Measures]:
    """(campaign id, ad group id, term) -> totals over the range, for terms with impressions."""
    acc = account("google")
    out: dict[tuple[str, str, str], Measures] = {}
    for c in acc.campaigns:
        for n, group in enumerate(c.ad_groups):
            for t, term in enumerate(group.search_terms):
                total = ZERO
                for day in days(date_range):
                    total = total + search_term_days(acc, c, n, day)[t]
                if total.impressions:
                    out[(c.id, group.id, term.text)] = total
    return out


def keywords(date_range: str) -> dict[str, tuple[int | None, Measures]]:
    """Keyword id -> (quality score, totals over the range), for keywords with impressions."""
    acc = account("google")
    out: dict[str, tuple[int | None, Measures]] = {}
    for c in acc.campaigns:
        for n, group in enumerate(c.ad_groups):
            for k, keyword in enumerate(group.keywords):
                total = ZERO
                for day in days(date_range):
                    total = total + keyword_days(acc, c, n, day)[k]
                if total.impressions:
                    out[keyword.id] = (keyword.quality_score, total)
    return out


def asset_groups(date_range: str) -> dict[str, Measures]:
    acc = account("google")
    out: dict[str, Measures] = {}
    for c in acc.campaigns:
        for n, group in enumerate(c.asset_groups):
            total = ZERO
            for day in days(date_range):
                total = total + asset_group_days(acc, c, day)[n]
            if total.impressions:
                out[group.id] = total
    return out


def auction_domains(date_range: str) -> set[tuple[str, str]]:
    """(campaign id, domain) of every auction-insights row ("You" for the account)."""
    acc = account("google")
    out: set[tuple[str, str]] = set()
    for c in acc.campaigns:
        if c.channel != "SEARCH":
            continue
        for rival in (None, *c.competitors):
            if any(auction_day(acc, c, rival, day).ai_days for day in days(date_range)):
                out.add((c.id, "You" if rival is None else acc.competitors[rival].domain))
    return out


# -- what the analyses must answer ----------------------------------------------------


def normalised_days(platform: str, first: date, last: date, today: date = TODAY) -> list[CampaignDay]:
    """The campaign days the adapter gives for [first, last] (within the sandbox's history),
    as the analyses read them: Meta counts no purchase value for lead campaigns."""
    acc = account(platform)
    start = max(first, history(today).start)
    out: list[CampaignDay] = []
    for c in acc.campaigns:
        for n in range((last - start).days + 1):
            day = start + timedelta(days=n)
            m = campaign_day(acc, c, day)
            if not m.impressions:
                continue
            value = 0.0 if platform == "meta" and c.objective == "OUTCOME_LEADS" else m.conversions_value
            out.append(
                CampaignDay(
                    date=day,
                    campaign_id=c.id,
                    campaign_name=c.name,
                    status=c.status,
                    impressions=m.impressions,
                    clicks=m.clicks,
                    cost=m.cost_micros / 1e6,
                    conversions=float(m.conversions),
                    conversion_value=value,
                )
            )
    return out


def totals(platform: str, first: date, last: date, today: date = TODAY) -> Totals:
    """The account's delivery over [first, last], from the data model."""
    return Totals.of(normalised_days(platform, first, last, today))
