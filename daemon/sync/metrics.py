"""Sync health for `GET /admin/metrics/sync` (seed 000 §F): per (tenant, platform, report
type) the successes, retries and final failures in `sync_log` over a window and the mean
duration of the successes, and the health of every credential; one database crossing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deneva.clock import as_datetime
from deneva.db import Connection, Database
from deneva.sql import query
from deneva.sync.reconnect import health_status, reconnect_needed

_SYNCS = query("sync_metrics_syncs")
_CREDENTIALS = query("sync_metrics_credentials")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _credential(row: Any, now: float) -> dict[str, Any]:
    reconnect = reconnect_needed(
        row["platform"],
        row["tenant"],
        row["account_id"],
        row["last_error_code"],
        row["access_token_expires_at"],
        now,
    )
    return {
        "tenantId": str(row["tenant_id"]),
        "tenant": row["tenant"],
        "platform": row["platform"],
        "accountId": row["account_id"],
        "healthy": row["healthy"],
        "status": health_status(row["healthy"], reconnect),
        "reconnect": None if reconnect is None else reconnect.as_json(),
        "lastErrorCode": row["last_error_code"],
        "lastSyncFailureAt": _iso(row["last_sync_failure_at"]),
        "lastSuccessAt": _iso(row["last_success_at"]),
    }


async def sync_metrics(db: Database, since: float, hours: int, now: float | None = None) -> dict[str, Any]:
    """The endpoint's answer for the window that starts at `since` (`hours` long); `now`
    (default: the window's end at `since + hours`) decides which credentials need a reconnect."""
    now = since + hours * 3600 if now is None else now
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
        "credentials": [_credential(r, now) for r in credentials],
    }
