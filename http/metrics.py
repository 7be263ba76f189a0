"""`GET /metrics`: the daemon's metrics in the Prometheus text format.

With a token (the optional secret file DENEVA_METRICS_TOKEN) the request needs
`Authorization: Bearer <token>` (compared in constant time); a missing or wrong one
is 401 with `WWW-Authenticate: Bearer`. Without a token the endpoint is open (bind
the daemon to a private address, or configure one).

Each scrape awaits the daemon's `collect()` (the scrape-time gauges, one database
crossing) and renders; a failing `collect` still answers 200 with the counters (see
`Metrics.scrape`). The token never appears in an answer or a log line.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from quart import Blueprint, Response, jsonify, request

from deneva.metrics import CONTENT_TYPE_LATEST, Metrics, ScrapeValues
from deneva.secrets import Secret

METRICS_PATH = "/metrics"
UNAUTHORIZED = (
    "missing or wrong bearer token: send Authorization: Bearer <the DENEVA_METRICS_TOKEN file's value>"
)

Collect = Callable[[], Awaitable[ScrapeValues]]


@attrs.frozen
class MetricsEndpoint:
    """What `create_app(metrics=...)` needs to serve /metrics."""

    metrics: Metrics
    collect: Collect
    token: Secret | None = None


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def metrics_blueprint(metrics: Metrics, collect: Collect, token: Secret | None) -> Blueprint:
    blueprint = Blueprint("metrics", __name__)
    expected = None if token is None else token.reveal().encode()

    @blueprint.get(METRICS_PATH)
    async def scrape() -> Any:
        if expected is not None:
            given = bearer_token(request.headers.get("Authorization", ""))
            if given is None or not hmac.compare_digest(given.encode(), expected):
                return jsonify({"error": UNAUTHORIZED}), 401, {"WWW-Authenticate": "Bearer"}
        text = await metrics.scrape(collect)
        return Response(
            text, status=200, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    return blueprint
