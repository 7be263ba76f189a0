"""ASGI wrapper recording every HTTP request's route, method, status and latency in
`Metrics.http_request` (`HttpServer(..., metrics=...)` puts it around the app).

It wraps the app hypercorn is given, so it sees both of hypercorn's lanes: its own
protocol and deneva's `/mcp` fast lane (`hypercorn_tcp.LeanTCPServer`, which calls that
same app directly).

- **Route**: a label from a fixed table (`route_of`), never the raw path: `/e/<key>`
  carries the event key, a secret, and is counted as `/e/{key}`.
- **Status**: the response's. A request that got no response is 499 when its client
  went away (or the request was cancelled), else 500 (hypercorn answers 500 then).
- **Latency**: from the request to its response's last body message (an SSE stream:
  until it ends), recorded before that message is written, so a client that has its
  answer is already counted.
- **WebSockets** count once, at their handshake, with method `WEBSOCKET`: 101 when
  accepted, the status of a denial sent as an HTTP response, 403 for a close before
  the accept (what hypercorn answers), else as an HTTP request. The latency is the
  handshake's, not the socket's life.
"""

from __future__ import annotations

import time
from typing import Any

from deneva.metrics import OTHER, Metrics

Scope = Any  # ASGI scope/receive/send: as in deneva.http.server
Receive = Any
Send = Any
ASGIApp = Any

# Paths (without a trailing slash) that are their own route label.
EXACT_ROUTES = {
    "/mcp": "/mcp",
    "/mcp/ws": "/mcp/ws",
    "/healthz": "/healthz",
    "/readyz": "/readyz",
    "/metrics": "/metrics",
    "/admin/health/scheduler": "/admin/health/scheduler",
    "/admin/metrics/sync": "/admin/metrics/sync",
    "/api/events": "/api/events",
    "/webhooks/events": "/webhooks/events",
    "/webhooks/meta": "/webhooks/meta",
}
# Path prefixes whose rest is a parameter (or an endpoint without a label of its own).
PREFIX_ROUTES = (
    ("/e/", "/e/{key}"),
    ("/admin/", "/admin/other"),
    ("/webhooks/", "/webhooks/{path}"),
    ("/.well-known/", "/.well-known/{path}"),
)

CLIENT_GONE = 499  # no response: the client went away first (nginx's code for it)
NO_RESPONSE = 500  # no response and the client still there: hypercorn answers 500
WS_ACCEPTED = 101
WS_CLOSED_BEFORE_ACCEPT = 403


def route_of(path: str) -> str:
    """The route label of a request path (one of deneva.metrics.HTTP_ROUTES)."""
    trimmed = path.rstrip("/")
    route = EXACT_ROUTES.get(trimmed)
    if route is not None:
        return route
    for prefix, label in PREFIX_ROUTES:
        if path.startswith(prefix):
            return label
    return OTHER


class Instrumented:
    """ASGI: `app`, with each HTTP request and WebSocket handshake counted in `metrics`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route = route_of(scope["path"])
        method = scope["method"]
        status = 0
        recorded = False
        gone = False

        async def receive_watched() -> Any:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
            return message

        async def send_watched(message: Any) -> None:
            nonlocal status, recorded
            kind = message["type"]
            if kind == "http.response.start":
                status = int(message["status"])
            elif kind == "http.response.body" and not message.get("more_body", False) and not recorded:
                recorded = True
                self.metrics.http_request(route, method, status, time.perf_counter() - started)
            await send(message)

        cancelled = True
        try:
            await self.app(scope, receive_watched, send_watched)
            cancelled = False
        except Exception:
            cancelled = False
            raise
        finally:
            if not recorded:
                if not status:
                    status = CLIENT_GONE if gone or cancelled else NO_RESPONSE
                self.metrics.http_request(route, method, status, time.perf_counter() - started)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route = route_of(scope["path"])
        recorded = False
        gone = False

        def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            self.metrics.http_request(route, "WEBSOCKET", status, time.perf_counter() - started)

        async def receive_watched() -> Any:
            nonlocal gone
            message = await receive()
            if message["type"] == "websocket.disconnect":
                gone = True
            return message

        async def send_watched(message: Any) -> None:
            if not recorded:
                kind = message["type"]
                if kind == "websocket.accept":
                    record(WS_ACCEPTED)
                elif kind == "websocket.http.response.start":
                    record(int(message["status"]))
                elif kind == "websocket.close":
                    record(WS_CLOSED_BEFORE_ACCEPT)
            await send(message)

        cancelled = True
        try:
            await self.app(scope, receive_watched, send_watched)
            cancelled = False
        except Exception:
            cancelled = False
            raise
        finally:
            if not recorded:
                record(CLIENT_GONE if gone or cancelled else NO_RESPONSE)
