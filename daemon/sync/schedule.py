"""Keeping the cache warm (seed 000 §B, with the seed's intent rather than its crons).

- `eager-cache-refresh` (every minute): every cached report whose `refresh_at` (80-90 %
  of its TTL, jittered) has come is refreshed. The refresh event's id names the row's
  `refresh_at`, so each due time is refreshed once, however many replicas look; a
  refresh that exhausted its retries sets a later `refresh_at`, so it is tried again.
- `sync-{platform}-{reportType}` (every 10 minutes, one per cadence row): reports never
  fetched yet, for every connected account, are fetched.

Each is a fan-out whose output says what it did (seed 002): how many refreshes it
enqueued (`processed`), how many it skipped and why (`revoked` or `unhealthy`: the
account waits for a reconnect; `paused`: `refresh-tenant-report` is paused, so nothing
is enqueued to pile up behind the pause; `not_synced`: this daemon has no adapter for
the platform), and how many events failed to start a refresh (`failed`, with reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from deneva.clock import as_datetime
from deneva.db import Connection, Database
from deneva.engine.context import Context
from deneva.engine.events import MAX_BATCH
from deneva.engine.functions import CronTrigger, Function, Registry
from deneva.sql import query
from deneva.sync.cadence import CADENCES, Cadence
from deneva.sync.model import FanOut, RefreshTarget

FANOUT_CRON = "*/10 * * * *"
REFRESH_FUNCTION = "refresh-tenant-report"
_DUE = query("sync_due_refreshes")
_DUE_SKIPPED = query("sync_due_skipped")
_MISSING = query("sync_missing_reports")
_MISSING_SKIPPED = query("sync_missing_skipped")


def _skipped(rows: Sequence[Any]) -> dict[str, int]:
    return {row["reason"]: int(row["n"]) for row in rows}


async def due_refreshes(
    conn: Connection, now: float, limit: int = MAX_BATCH, platforms: Sequence[str] | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Refresh events for the due rows (of `platforms` only, when given), and the due rows
    left alone, counted by why."""
    chosen = None if platforms is None else list(platforms)
    rows = await conn.fetch(_DUE, as_datetime(now), limit, chosen)
    skipped = _skipped(await conn.fetch(_DUE_SKIPPED, as_datetime(now), chosen))
    events = [
        RefreshTarget(
            r["tenant_id"], r["platform"], r["account_id"], r["report_type"], r["date_range"]
        ).event(
            f"refresh:{r['tenant_id']}:{r['platform']}:{r['account_id']}:{r['report_type']}:"
            f"{r['date_range']}:{r['due_ms']}"
        )
        for r in rows
    ]
    return events, skipped


async def missing_reports(
    conn: Connection, cadence: Cadence, tick_ms: int, limit: int = MAX_BATCH
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Refresh events for the cadence's reports never fetched yet, and those left alone."""
    ranges = list(cadence.date_ranges)
    rows = await conn.fetch(_MISSING, cadence.platform, ranges, cadence.report_type, limit)
    skipped = _skipped(await conn.fetch(_MISSING_SKIPPED, cadence.platform, ranges, cadence.report_type))
    events = [
        RefreshTarget(
            r["tenant_id"], cadence.platform, r["account_id"], cadence.report_type, r["date_range"]
        ).event(
            f"fanout:{r['tenant_id']}:{cadence.platform}:{r['account_id']}:{cadence.report_type}:"
            f"{r['date_range']}:{tick_ms}"
        )
        for r in rows
    ]
    return events, skipped


async def enqueue_refreshes(
    ctx: Context, step_id: str, events: list[dict[str, Any]], skipped: dict[str, int]
) -> FanOut:
    """Send the refreshes as one step, unless the refresh function is paused."""
    if not events:
        return FanOut(0, skipped)
    if await ctx.step.paused(REFRESH_FUNCTION):
        return FanOut(0, {**skipped, "paused": len(events)})
    sent = await ctx.step.send_event(step_id, events)
    return FanOut(len(events) - len(sent.errors), skipped, len(sent.errors), sent.errors[:10])


def register_schedules(
    registry: Registry, db_of: Callable[[], Database], platforms_of: Callable[[], Sequence[str]] | None = None
) -> None:
    """`platforms_of()`: the platforms this daemon syncs (None: all); the others are skipped."""

    async def eager_cache_refresh(ctx: Context) -> dict[str, Any]:
        now = ctx.event["ts"] / 1000
        platforms = None if platforms_of is None else platforms_of()

        async def find() -> dict[str, Any]:
            events, skipped = await db_of().run(lambda conn: due_refreshes(conn, now, platforms=platforms))
            return {"events": events, "skipped": skipped}

        found = await ctx.step.run("find-due", find)
        return (await enqueue_refreshes(ctx, "refresh", found["events"], found["skipped"])).as_json()

    registry.add(Function("eager-cache-refresh", eager_cache_refresh, (CronTrigger("* * * * *"),), retries=0))

    for cadence in CADENCES:

        async def fan_out(ctx: Context, cadence: Cadence = cadence) -> dict[str, Any]:
            if platforms_of is not None and cadence.platform not in platforms_of():
                return FanOut(0, {"not_synced": 1}).as_json()
            tick_ms = int(ctx.event["ts"])

            async def find() -> dict[str, Any]:
                events, skipped = await db_of().run(lambda conn: missing_reports(conn, cadence, tick_ms))
                return {"events": events, "skipped": skipped}

            found = await ctx.step.run("find-missing", find)
            return (await enqueue_refreshes(ctx, "fan-out", found["events"], found["skipped"])).as_json()

        registry.add(
            Function(
                f"sync-{cadence.platform}-{cadence.report_type}",
                fan_out,
                (CronTrigger(FANOUT_CRON),),
                retries=0,
            )
        )
