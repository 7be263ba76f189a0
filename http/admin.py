"""Admin endpoints (SPEC §10, seed 000 §F and §G), behind the `x-admin-token` header.

- `GET /admin/health/scheduler`: the dead-canary. 200 while the latest beat of the
  engine's `heartbeat` function (`deneva.canary`: a cron run that only beats once it got
  through scheduler, dispatcher and a worker) is under 10 minutes old, else 503; body
  `{alive, lastBeatAt, ageMs, node}` (`node` ran that beat; `lastBeatAt` and `ageMs` are
  null when no beat got through yet).
- `GET /admin/metrics/sync?sinceHours=1..168` (default 24): per (tenant, platform,
  report type) the successes, retries and final failures in `sync_log` over the window
  and the mean duration of the successes, plus the health of every credential
  (`deneva.sync.metrics`, one database crossing), and `apiVersions`: per synced platform
  its API version and how it stands against its published sunset date
  (`deneva.sync.versions`: `{version, sunset, sunsetProjected, daysLeft, status,
  replacement}`, status current, sunsetting, sunset or unlisted).

A missing or wrong token is 401 (compared in constant time); bad parameters are 400
naming the parameter; a database outage is 503. The token never appears in an answer.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

from quart import Blueprint, jsonify, request

from deneva.canary import MAX_AGE_S, latest_beat
from deneva.clock import Clock
from deneva.db import Database
from deneva.errors import DatabaseError
from deneva.secrets import Secret
from deneva.sync.metrics import sync_metrics

HEADER = "x-admin-token"
MIN_HOURS, MAX_HOURS, DEFAULT_HOURS = 1, 168, 24


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


def admin_blueprint(
    db_of: Callable[[], Database | None],
    admin_token: Secret,
    clock: Clock,
    api_versions: Callable[[], dict[str, Any]] = dict,
) -> Blueprint:
    """`db_of()` returns the daemon's database (None while it is not connected),
    `api_versions()` the synced platforms' API versions as they stand today."""
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
            beat = await latest_beat(database())
        except DatabaseError:
            return unavailable()
        if beat is None:
            body: dict[str, Any] = {"alive": False, "lastBeatAt": None, "ageMs": None, "node": None}
            return jsonify(body), 503
        age_s = beat.age_s(clock.now())
        alive = age_s < MAX_AGE_S
        body = {"alive": alive, "lastBeatAt": _iso(beat.at), "ageMs": int(age_s * 1000), "node": beat.node}
        return jsonify(body), (200 if alive else 503)

    @blueprint.get("/admin/metrics/sync")
    async def metrics_of_sync() -> Any:
        try:
            hours = parse_since_hours(request.args.get("sinceHours"))
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        try:
            body = await sync_metrics(database(), clock.now() - hours * 3600, hours)
        except DatabaseError:
            return unavailable()
        return jsonify({**body, "apiVersions": api_versions()})

    return blueprint
