"""The quart-trio application: health now; MCP, metrics and admin routes join it."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify
from quart_trio import QuartTrio

from deneva.health import HealthState

MAX_BODY_BYTES = 1024 * 1024


def create_app(health: HealthState) -> QuartTrio:
    app = QuartTrio("deneva")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = True

    @app.get("/healthz")
    async def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Any:
        result = await health.readiness()
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
