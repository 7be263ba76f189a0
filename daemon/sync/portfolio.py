"""The portfolio overview's read: every connected account of a tenant with its cached
account health over one date range, from the cache alone (no platform call)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import attrs

from deneva.db import Connection, Database
from deneva.reports.portfolio import AccountFigures, Portfolio, portfolio, totals_from_json
from deneva.sql import query
from deneva.sync.model import RefreshTarget

__all__ = ["PortfolioRead", "read_portfolio"]

# Accounts in one overview; more are left out and the overview says it is truncated.
MAX_PORTFOLIO_ACCOUNTS = 500
_ACCOUNTS = query("portfolio_accounts")


@attrs.frozen
class PortfolioRead:
    overview: Portfolio
    oldest_fetch: datetime | None  # the least fresh account's fetch
    stale: bool  # an account's row is past its TTL or marked stale
    # Accounts without a cached account health whose refresh is worth asking for.
    to_refresh: tuple[RefreshTarget, ...]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def read_portfolio(
    db: Database, tenant: uuid.UUID, date_range: str, now: float, limit: int = MAX_PORTFOLIO_ACCOUNTS
) -> PortfolioRead:
    """One tenant transaction (row-level security scopes it), one statement."""

    async def fetch(conn: Connection) -> list[Any]:
        return list(await conn.fetch(_ACCOUNTS, tenant, date_range, limit + 1))

    rows = await db.tenant_transaction(str(tenant), fetch)
    truncated = len(rows) > limit
    figures: list[AccountFigures] = []
    oldest: datetime | None = None
    stale = False
    to_refresh: list[RefreshTarget] = []
    for r in rows[:limit]:
        platform, account_id = str(r["platform"]), str(r["account_id"])
        healthy, error = bool(r["healthy"]), r["last_error_code"]
        totals = totals_from_json(r["totals"])
        fetched_at, expires_at = r["fetched_at"], r["expires_at"]
        if totals is None or not isinstance(fetched_at, datetime) or not isinstance(expires_at, datetime):
            figures.append(AccountFigures(platform, account_id, healthy, _text(error)))
            if not (not healthy and error == "token_revoked"):  # asking again would be refused again
                to_refresh.append(RefreshTarget(tenant, platform, account_id, "account_health", date_range))
            continue
        row_stale = bool(r["is_stale"]) or expires_at.timestamp() <= now
        stale = stale or row_stale
        oldest = fetched_at if oldest is None or fetched_at < oldest else oldest
        figures.append(
            AccountFigures(
                platform,
                account_id,
                healthy,
                _text(error),
                totals=totals,
                previous_totals=totals_from_json(r["previous_totals"]),
                coverage=_text(r["coverage"]) or "none",
                currency=_text(r["currency"]),
                fetched_at=_iso(fetched_at),
                expires_at=_iso(expires_at),
                stale=row_stale,
            )
        )
    return PortfolioRead(
        portfolio(figures, date_range, truncated=truncated), oldest, stale, tuple(to_refresh)
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
