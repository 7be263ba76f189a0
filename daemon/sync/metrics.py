"""Sync health for `GET /admin/metrics/sync` (seed 000 §F): per (tenant, platform, report
type) the successes, retries and final failures in `sync_log` over a window and the mean
duration of the successes, and the health of every credential; one database crossing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deneva.clock import as_datetime
from deneva.db import Connection, Database
from deneva.sql import query

_SYNCS = query("sync_metrics_syncs")
_CREDENTIALS = query("sync_metrics_credentials")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def sync_metrics(db: Database, since: float, hours: int) -> dict[str, Any]:
    """The endpoint's answer for the window that starts at `since` (`hours` long)."""
    start = as_datetime(since)

    async def read(conn: Connection) -> tuple[list[Any], list[Any]]:
        return await conn.fetch(_SYNCS, start), await conn.fetch(_CREDENTIALS)

    syncs, credentials = await db.run(read)
    return {
        "window": {"sinceHours": hours, "since": _iso(start)},
        "syncs": [
            {
                "tenantId": str(r["tenant_id"]),
                "tenant": r["tenant"],
                "platform": r["platform"],
                "reportType": r["report_type"],
                "successes": r["successes"],
                "retries": r["retries"],
                "finals": r["finals"],
                "avgDurationMs": r["avg_ms"],
            }
            for r in syncs
        ],
        "credentials": [
            {
                "tenantId": str(r["tenant_id"]),
                "tenant": r["tenant"],
                "platform": r["platform"],
                "accountId": r["account_id"],
                "healthy": r["healthy"],
                "lastErrorCode": r["last_error_code"],
                "lastSyncFailureAt": _iso(r["last_sync_failure_at"]),
                "lastSuccessAt": _iso(r["last_success_at"]),
            }
            for r in credentials
        ],
    }
