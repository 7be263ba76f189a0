"""The quart-trio application: health, event ingestion, webhooks; MCP, metrics and admin join it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quart import Response, jsonify
from quart_trio import QuartTrio

from deneva.connect import BrowserConnect
from deneva.db import Database
from deneva.engine.engine import Engine
from deneva.health import HealthState
from deneva.http.admin import admin_blueprint
from deneva.http.connect import connect_blueprint
from deneva.http.console import ConsoleServices, console_blueprint
from deneva.http.events import events_blueprint
from deneva.http.metrics import MetricsEndpoint, metrics_blueprint
from deneva.http.webhooks import WebhookSecrets, webhooks_blueprint
from deneva.secrets import Secret

MAX_BODY_BYTES = 1024 * 1024


def create_app(
    health: HealthState,
    engine_of: Callable[[], Engine] | None = None,
    event_key: Secret | None = None,
    *,
    admin_token: Secret | None = None,
    db_of: Callable[[], Database | None] | None = None,
    metrics: MetricsEndpoint | None = None,
    api_versions: Callable[[], dict[str, Any]] = dict,
    connect_of: Callable[[], BrowserConnect | None] | None = None,
    webhooks: WebhookSecrets | None = None,
    console: ConsoleServices | None = None,
) -> QuartTrio:
    """The app; event ingestion with `engine_of` and `event_key`, the admin endpoints
    with `admin_token` (on `db_of()`, by default the database `health` knows, and
    `api_versions()`, the synced platforms' API versions), `GET /metrics` with
    `metrics`, the browser connect's pages with `connect_of`, the inbound webhooks
    (`/webhooks/events`, `/webhooks/meta`) with `engine_of` and `webhooks`, and the
    operator console (`/admin/`) with `console`."""
    app = QuartTrio("deneva")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True
    if engine_of is not None and event_key is not None:
        app.register_blueprint(events_blueprint(engine_of, event_key))
    if engine_of is not None and webhooks is not None:
        app.register_blueprint(webhooks_blueprint(engine_of, health.clock, webhooks))
    if admin_token is not None:
        app.register_blueprint(
            admin_blueprint(db_of or (lambda: health.db), admin_token, health.clock, api_versions)
        )
    if connect_of is not None:
        app.register_blueprint(connect_blueprint(connect_of))
    if console is not None:
        app.register_blueprint(console_blueprint(console))
    if metrics is not None:
        app.register_blueprint(metrics_blueprint(metrics.metrics, metrics.collect, metrics.token))

    @app.get("/healthz")
    async def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Any:
        result = await health.probe()
        body = {
            "status": "ready" if result.ready else "not ready",
            "checks": result.checks,
            "problems": list(result.problems),
        }
        return jsonify(body), (200 if result.ready else 503)

    @app.errorhandler(404)
    async def not_found(_error: Exception) -> Any:
        return jsonify({"error": "not found"}), 404

    @app.errorhandler(405)
    async def not_allowed(_error: Exception) -> Any:
        return jsonify({"error": "method not allowed"}), 405

    @app.errorhandler(413)
    async def too_large(_error: Exception) -> Any:
        return jsonify({"error": f"request body larger than {MAX_BODY_BYTES} bytes"}), 413

    @app.errorhandler(Exception)
    async def internal(error: Exception) -> Any:
        app.logger.exception("unhandled error in request")
        return Response('{"error": "internal error"}', status=500, content_type="application/json")

    return app
