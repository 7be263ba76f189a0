"""Inbound webhooks over HTTP (SPEC §10, issue 15; signatures: deneva.webhooks).

- `POST /webhooks/events`: Standard Webhooks (`webhook-id`, `webhook-timestamp`,
  `webhook-signature` under `DENEVA_SIGNING_KEY`); the body is events as `/api/events`
  takes them, checked and stored by the same code (`deneva.http.events.store_events`).
  202 with the ids once stored; a delivery whose `webhook-id` was stored before is 200
  `{"duplicate": true}` and stores nothing (the sender retries until it gets a 2xx, so
  a known delivery is a success, not an error).
- `GET /webhooks/meta`: Meta's verification handshake: the `hub.challenge` as text when
  `hub.verify_token` is `DENEVA_META_VERIFY_TOKEN`, else 403.
- `POST /webhooks/meta`: a change notification, `X-Hub-Signature-256` checked against
  the raw body with `DENEVA_META_APP_SECRET` before it is parsed, stored as one
  `meta/webhook.received` event (deneva.sync.webhooks refreshes from it), deduplicated by
  the body's SHA-256; 200 once stored. Without both Meta secrets: 503, saying so.

Each answers only after what it accepted is durably stored, in one database crossing
(the delivery's record and its events, one transaction); nothing is stored for a
request refused. A body over `webhook_max_body` is 413 naming the limit, before its
signature is checked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
from quart import Blueprint, Response, jsonify, request

from deneva.clock import Clock
from deneva.engine.engine import Engine
from deneva.engine.model import Delivery
from deneva.http.events import BadBody, json_body, store_events
from deneva.secrets import Secret
from deneva.sync.webhooks import META_WEBHOOK_EVENT
from deneva.webhooks import (
    META_SOURCE,
    SIGNED_HEADERS,
    STANDARD_SOURCE,
    SigningKey,
    WebhookRefused,
    delivery_digest,
    meta_challenge,
    parse_meta_notification,
    verify_meta,
    verify_standard,
)

log = logging.getLogger("deneva.http")

NOT_CONFIGURED = (
    "Meta webhooks are not configured: the daemon needs the secret files DENEVA_META_APP_SECRET "
    "and DENEVA_META_VERIFY_TOKEN"
)


@attrs.frozen
class WebhookSecrets:
    """What `create_app(webhooks=...)` needs: the Standard Webhooks key, and Meta's app
    secret and verify token (None: `/webhooks/meta` is not configured)."""

    signing_key: SigningKey
    meta_app_secret: Secret | None = None
    meta_verify_token: Secret | None = None
    max_body: int = 1024 * 1024


def webhooks_blueprint(engine_of: Callable[[], Engine], clock: Clock, secrets: WebhookSecrets) -> Blueprint:
    blueprint = Blueprint("webhooks", __name__)

    def refused(exc: WebhookRefused) -> Any:
        return jsonify({"error": str(exc)}), exc.status

    async def body() -> bytes:
        """The raw body, within the limit (WebhookRefused 413 otherwise)."""
        limit = secrets.max_body
        too_large = WebhookRefused(
            413, f"request body larger than the limit of {limit} bytes (webhook_max_body)"
        )
        if (request.content_length or 0) > limit:
            raise too_large
        raw = await request.get_data(cache=False, as_text=False)
        data = raw if isinstance(raw, bytes) else raw.encode()
        if len(data) > limit:
            raise too_large
        return data

    @blueprint.post("/webhooks/events")
    async def standard() -> Any:
        try:
            data = await body()
            headers = {
                name: value for name in SIGNED_HEADERS if (value := request.headers.get(name)) is not None
            }
            webhook_id = verify_standard(secrets.signing_key, headers, data, clock.now())
            events = json_body(data)
        except WebhookRefused as exc:
            return refused(exc)
        except BadBody as exc:
            return jsonify({"error": str(exc)}), 400
        answer, status = await store_events(engine_of(), events, Delivery(STANDARD_SOURCE, webhook_id))
        if status < 300:
            answer["webhookId"] = webhook_id
        return jsonify(answer), status

    def meta_secrets() -> tuple[str, str] | None:
        if secrets.meta_app_secret is None or secrets.meta_verify_token is None:
            return None
        return secrets.meta_app_secret.reveal(), secrets.meta_verify_token.reveal()

    @blueprint.get("/webhooks/meta")
    async def meta_handshake() -> Any:
        configured = meta_secrets()
        if configured is None:
            return jsonify({"error": NOT_CONFIGURED}), 503
        try:
            challenge = meta_challenge(request.args, configured[1])
        except WebhookRefused as exc:
            return refused(exc)
        response = Response(challenge, status=200, content_type="text/plain; charset=utf-8")
        response.headers["X-Content-Type-Options"] = "nosniff"  # the challenge is the caller's text
        return response

    @blueprint.post("/webhooks/meta")
    async def meta_notification() -> Any:
        configured = meta_secrets()
        if configured is None:
            return jsonify({"error": NOT_CONFIGURED}), 503
        try:
            data = await body()
            verify_meta(configured[0], request.headers.get("X-Hub-Signature-256"), data)
            notification = parse_meta_notification(json_body(data))
        except WebhookRefused as exc:
            return refused(exc)
        except BadBody as exc:
            return jsonify({"error": str(exc)}), 400
        event = {"name": META_WEBHOOK_EVENT, "data": notification}
        answer, status = await store_events(engine_of(), event, Delivery(META_SOURCE, delivery_digest(data)))
        return jsonify(answer), (200 if status < 300 else status)

    return blueprint
