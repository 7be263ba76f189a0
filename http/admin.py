"""Admin endpoints (SPEC §10, seed 000 §F and §G), behind the `x-admin-token` header.

- `GET /admin/health/scheduler`: the dead-canary. 200 while the latest scheduler
  heartbeat (any node; `actors/heartbeat.py` writes them) is under 10 minutes old,
  else 503; body `{alive, lastBeatAt, ageMs, node}` (`lastBeatAt` and `ageMs` are
  null when no scheduler ever beat).
- `GET /admin/metrics/sync?sinceHours=1..168` (default 24): per (tenant, platform,
  report type) the successes, retries and final failures in `sync_log` over the window
  and the mean duration of the successes, plus the health of every credential, from
  one database crossing.

A missing or wrong token is 401 (compared in constant time); bad parameters are 400
naming the parameter; a database outage is 503. The token never appears in an answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

from quart import Blueprint, jsonify, request

from deneva.clock import Clock, as_datetime
from deneva.db import Connection, Database
from deneva.errors import DatabaseError
from deneva.health import HEARTBEAT_MAX_AGE_S
from deneva.secrets import Secret

HEADER = "x-admin-token"
MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 1, 168, 24

_LATEST_BEAT = """
SELECT node, last_beat_at FROM heartbeats WHERE source = 'scheduler'
ORDER BY last_beat_at DESC LIMIT 1
"""

_SYNCS = """
SELECT l.tenant_id, t.name AS tenant, l.platform, l.report_type,
       count(*) FILTER (WHERE l.outcome = 'success') AS successes,
       count(*) FILTER (WHERE l.outcome = 'failure_retry') AS retries,
       count(*) FILTER (WHERE l.outcome = 'failure_final') AS finals,
       coalesce(round(avg(l.duration_ms) FILTER (WHERE l.outcome = 'success')), 0)::bigint AS avg_ms
FROM sync_log l JOIN tenants t ON t.id = l.tenant_id
WHERE l.created_at >= $1
GROUP BY l.tenant_id, t.name, l.platform, l.report_type
ORDER BY t.name, l.platform, l.report_type
"""

_CREDENTIALS = """
SELECT p.tenant_id, t.name AS tenant, p.platform, p.account_id, p.healthy, p.last_error_code,
       p.last_sync_failure_at, p.last_success_at
FROM platform_credentials p JOIN tenants t ON t.id = p.tenant_id
ORDER BY t.name, p.platform, p.account_id
"""


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def parse_since_hours(raw: str | None) -> int:
    """`sinceHours` as an int in 1..168 (24 when absent); ValueError says what is wrong."""
    if raw is None:
        return DEFAULT_HOURS
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or not MIN_HOURS <= int(text) <= MAX_HOURS:
        shown = raw if len(raw) <= 20 else raw[:20] + "..."
        raise ValueError(
            f"sinceHours: expected a whole number of hours from {MIN_HOURS} to {MAX_HOURS}, got {shown!r}"
        )
    return int(text)


def admin_blueprint(db_of: Callable[[], Database | None], admin_token: Secret, clock: Clock) -> Blueprint:
    """`db_of()` returns the daemon's database (None while it is not connected)."""
    blueprint = Blueprint("admin", __name__)
    expected = admin_token.reveal().encode()

    @blueprint.before_request
    async def authenticate() -> Any:
        given = request.headers.get(HEADER, "")
        if not hmac.compare_digest(given.encode(), expected):
            return jsonify({"error": f"missing or wrong {HEADER} header"}), 401
        return None

    def database() -> Database:
        db = db_of()
        if db is None:
            raise DatabaseError("database not connected yet")
        return db

    def unavailable() -> Any:
        return jsonify({"error": "the database is unavailable; retry later"}), 503

    @blueprint.get("/admin/health/scheduler")
    async def scheduler_health() -> Any:
        try:
            row = await database().fetchrow(_LATEST_BEAT)
        except DatabaseError:
            return unavailable()
        if row is None:
            body: dict[str, Any] = {"alive": False, "lastBeatAt": None, "ageMs": None, "node": None}
            return jsonify(body), 503
        age_s = max(0.0, clock.now() - row["last_beat_at"].timestamp())
        alive = age_s < HEARTBEAT_MAX_AGE_S
        body = {
            "alive": alive,
            "lastBeatAt": _iso(row["last_beat_at"]),
            "ageMs": int(age_s * 1000),
            "node": row["node"],
        }
        return jsonify(body), (200 if alive else 503)

    @blueprint.get("/admin/metrics/sync")
    async def sync_metrics() -> Any:
        try:
            hours = parse_since_hours(request.args.get("sinceHours"))
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        since = as_datetime(clock.now() - hours * 3600)

        async def read(conn: Connection) -> tuple[list[Any], list[Any]]:
            return await conn.fetch(_SYNCS, since), await conn.fetch(_CREDENTIALS)

        try:
            syncs, credentials = await database().run(read)  # one crossing
        except DatabaseError:
            return unavailable()
        return jsonify(
            {
                "window": {"sinceHours": hours, "since": _iso(since)},
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
        )

    return blueprint
