"""Event ingestion over HTTP (SPEC §10, seed 004): `POST /api/events` with the event
key as `Authorization: Bearer` or `X-Event-Key`, and `POST /e/{event_key}`, the
path Inngest's event API uses. Body: one event `{name, data, id?, ts?}` or a list.
Answers 202 with the event ids (a repeated id is accepted and ignored)."""

from __future__ import annotations

import hmac
import json
import logging
import sys
from typing import Any

from quart import Blueprint, jsonify, request

from deneva.engine.engine import Engine
from deneva.engine.errors import EngineError
from deneva.engine.model import Delivery
from deneva.errors import DatabaseError, DatabaseUnavailable, TransactionConflict
from deneva.secrets import Secret

log = logging.getLogger("deneva.http")


class BadBody(ValueError):
    """A request body that is not JSON; the message says why."""


def json_body(data: bytes | str) -> Any:
    """The request body as JSON; BadBody naming why not."""
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadBody(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadBody("body is not valid JSON: arrays or objects nested too deeply") from None
    except ValueError:  # the one other thing json.loads raises: int-str conversion's limit
        limit = sys.get_int_max_str_digits()
        raise BadBody(f"body is not valid JSON: a number has more than {limit} digits") from None


async def store_events(engine: Engine, body: Any, delivery: Delivery | None = None) -> tuple[Any, int]:
    """Events from outside, as `/api/events` and the webhooks take them: checked strictly
    (`Engine.send(strict=True)`), stored with what they trigger; the JSON answer and its
    status. With a `delivery` (a webhook), the result says whether it was a duplicate."""
    try:
        result = await engine.send(body, strict=True, delivery=delivery)
    except EngineError as exc:
        return {"error": str(exc)}, 400
    except (DatabaseUnavailable, TransactionConflict):
        return {"error": "the event store is unavailable; retry later"}, 503
    except DatabaseError as exc:
        # Refused by the database for what the batch holds: sending it again would fail
        # the same way, so not a 503 (clients retry those). The detail stays in the log.
        log.error("the event store refused a batch", extra={"error": str(exc)})
        return {"error": "the event store refused this batch (see the daemon's log)"}, 422
    if result.duplicate:
        return {"ids": [], "status": 200, "runs": 0, "duplicate": True}, 200
    return {"ids": list(result.event_ids), "status": 202, "runs": len(result.run_ids)}, 202


def events_blueprint(engine_of: Any, event_key: Secret) -> Blueprint:
    """`engine_of()` returns the running Engine (created after the app)."""
    blueprint = Blueprint("events", __name__)

    def key_ok(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), event_key.reveal().encode())

    async def ingest() -> Any:
        try:
            body = json_body(await request.get_data(as_text=True))
        except BadBody as exc:
            return jsonify({"error": str(exc)}), 400
        answer, status = await store_events(engine_of(), body)
        return jsonify(answer), status

    @blueprint.post("/api/events")
    async def api_events() -> Any:
        header = request.headers.get("Authorization", "")
        given = (
            header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("X-Event-Key")
        )
        if not key_ok(given):
            return jsonify({"error": "missing or wrong event key"}), 401, {"WWW-Authenticate": "Bearer"}
        return await ingest()

    @blueprint.post("/e/<path:key>")
    async def inngest_style(key: str) -> Any:
        if not key_ok(key):
            return jsonify({"error": "missing or wrong event key"}), 401
        return await ingest()

    return blueprint
