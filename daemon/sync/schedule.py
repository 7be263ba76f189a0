"""Keeping the cache warm (seed 000 §B, with the seed's intent rather than its crons).

- `eager-cache-refresh` (every minute): every cached report whose `refresh_at` (80-90 %
  of its TTL, jittered) has come is refreshed. The refresh event's id names the row's
  `refresh_at`, so each due time is refreshed once, however many replicas look; a
  refresh that exhausted its retries sets a later `refresh_at`, so it is tried again.
- `sync-{platform}-{reportType}` (every 10 minutes, one per cadence row): reports never
  fetched yet, for every connected account, are fetched.
Credentials whose token was revoked are left alone until they are connected again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deneva.clock import as_datetime
from deneva.db import Connection, Database
from deneva.engine.context import Context
from deneva.engine.events import MAX_BATCH
from deneva.engine.functions import CronTrigger, Function, Registry
from deneva.sync.cadence import CADENCES, Cadence

FANOUT_CRON = "*/10 * * * *"

_DUE = """
SELECT c.tenant_id, c.platform, c.account_id, c.report_type, c.date_range,
       (extract(epoch FROM c.refresh_at) * 1000)::bigint AS due_ms
FROM metric_cache c
JOIN platform_credentials p
  ON p.tenant_id = c.tenant_id AND p.platform = c.platform AND p.account_id = c.account_id
WHERE c.refresh_at <= $1 AND coalesce(p.last_error_code, '') <> 'token_revoked'
  AND ($3::text[] IS NULL OR c.platform = ANY($3::text[]))
ORDER BY c.refresh_at
LIMIT $2
"""

_MISSING = """
SELECT p.tenant_id, p.account_id, r.date_range
FROM platform_credentials p
CROSS JOIN unnest($2::text[]) AS r(date_range)
WHERE p.platform = $1 AND coalesce(p.last_error_code, '') <> 'token_revoked'
  AND NOT EXISTS (
      SELECT 1 FROM metric_cache c
      WHERE c.tenant_id = p.tenant_id AND c.platform = p.platform AND c.account_id = p.account_id
        AND c.report_type = $3 AND c.date_range = r.date_range)
LIMIT $4
"""


def refresh_event(row: Any, platform: str, report_type: str, event_id: str) -> dict[str, Any]:
    from deneva.sync.worker import REFRESH_EVENT

    return {
        "name": REFRESH_EVENT,
        "id": event_id,
        "data": {
            "tenant_id": str(row["tenant_id"]),
            "platform": platform,
            "account_id": row["account_id"],
            "report_type": report_type,
            "date_range": row["date_range"],
        },
    }


async def due_refreshes(
    conn: Connection, now: float, limit: int = MAX_BATCH, platforms: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Refresh events for the due rows (of `platforms` only, when given)."""
    rows = await conn.fetch(_DUE, as_datetime(now), limit, None if platforms is None else list(platforms))
    return [
        refresh_event(
            r,
            r["platform"],
            r["report_type"],
            f"refresh:{r['tenant_id']}:{r['platform']}:{r['account_id']}:{r['report_type']}:"
            f"{r['date_range']}:{r['due_ms']}",
        )
        for r in rows
    ]


async def missing_reports(
    conn: Connection, cadence: Cadence, tick_ms: int, limit: int = MAX_BATCH
) -> list[dict[str, Any]]:
    rows = await conn.fetch(_MISSING, cadence.platform, list(cadence.date_ranges), cadence.report_type, limit)
    return [
        refresh_event(
            r,
            cadence.platform,
            cadence.report_type,
            f"fanout:{r['tenant_id']}:{cadence.platform}:{r['account_id']}:{cadence.report_type}:"
            f"{r['date_range']}:{tick_ms}",
        )
        for r in rows
    ]


def register_schedules(
    registry: Registry, db_of: Callable[[], Database], platforms_of: Callable[[], Sequence[str]] | None = None
) -> None:
    """`platforms_of()`: the platforms this daemon syncs (None: all); the others are skipped."""

    async def eager_cache_refresh(ctx: Context) -> dict[str, int]:
        now = ctx.event["ts"] / 1000
        platforms = None if platforms_of is None else platforms_of()
        events = await ctx.step.run(
            "find-due", lambda: db_of().run(lambda conn: due_refreshes(conn, now, platforms=platforms))
        )
        if events:
            await ctx.step.send_event("refresh", events)
        return {"refreshes": len(events)}

    registry.add(Function("eager-cache-refresh", eager_cache_refresh, (CronTrigger("* * * * *"),), retries=0))

    for cadence in CADENCES:

        async def fan_out(ctx: Context, cadence: Cadence = cadence) -> dict[str, Any]:
            if platforms_of is not None and cadence.platform not in platforms_of():
                return {"fetches": 0, "skipped": f"{cadence.platform} is not synced by this daemon"}
            tick_ms = int(ctx.event["ts"])
            events = await ctx.step.run(
                "find-missing", lambda: db_of().run(lambda conn: missing_reports(conn, cadence, tick_ms))
            )
            if events:
                await ctx.step.send_event("fan-out", events)
            return {"fetches": len(events)}

        registry.add(
            Function(
                f"sync-{cadence.platform}-{cadence.report_type}",
                fan_out,
                (CronTrigger(FANOUT_CRON),),
                retries=0,
            )
        )
