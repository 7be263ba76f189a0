"""MCP over WebSocket at `/mcp/ws`, after the draft WebSocket transport (SEP-1288).

- The client offers the subprotocol `mcp` (`Sec-WebSocket-Protocol`); the server
  selects it. An upgrade without it is refused (400).
- Authentication happens once, at the upgrade, with the same headers as `/mcp`
  (`Authorization: Bearer` or `X-Api-Key`; an API key or an OAuth access token for
  this server's MCP URL). Browsers cannot set headers on a WebSocket, so an offered
  subprotocol `mcp.auth.<api key>` is accepted too (never echoed back). Host and
  Origin are checked as on `/mcp`. Refusals are HTTP answers (401, 403, 421) when the
  server supports the denial-response extension (hypercorn does). The key or token is
  checked again before every request, so a revoked key or token stops working at once:
  the request gets an error and the socket closes (1008). A `tools/call` whose scope
  the token lacks gets -32003.
- One JSON-RPC message per text frame. Binary frames close the socket (1003);
  messages over `MAX_FRAME_BYTES` close it (1009).
- The connection is the session: `initialize` then requests, as on Streamable HTTP
  2025-06-18 / 2025-11-25; or stateless 2026-07-28 requests carrying `_meta`. It counts
  toward the tenant's sessions with those of `/mcp` (one SessionStore): a tenant at its
  limit is refused at the upgrade (503). A socket that has received no message for
  `idle_timeout_s` while no request of its own is under way is closed (1000).
  Requests run concurrently (up to `MAX_CONCURRENT` per socket), so `ping` and
  `notifications/cancelled` are served while a tool waits; progress notifications
  go out on the same socket.

Deviation from SEP-1288: there is no `mcpSessionId` inside messages and no session
resumption across sockets: a socket is one session, and a new socket starts anew.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import attrs
import trio

from deneva.clock import Clock
from deneva.config import Config
from deneva.db import Database
from deneva.http.mcp import (
    Authenticate,
    HostPolicy,
    McpHttp,
    McpRouter,
    Receive,
    Scope,
    Send,
    api_key_from,
    database_authenticator,
    header_map,
)
from deneva.mcp import protocol
from deneva.mcp.jsonrpc import JsonRpcError, Notification, Request, Response, encode, parse_message
from deneva.mcp.server import McpServer, SessionContext
from deneva.mcp.sessions import DEFAULT_IDLE_TIMEOUT_S, SessionLimitReached, SessionStore
from deneva.mcp.tools import ToolRegistry
from deneva.oauth.resource import ProtectedResource

log = logging.getLogger("deneva.http.mcp_ws")

SUBPROTOCOL = "mcp"
AUTH_SUBPROTOCOL_PREFIX = "mcp.auth."
MAX_FRAME_BYTES = 1024 * 1024
MAX_CONCURRENT = 16
SEND_TIMEOUT_S = 30.0

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


class _Closed(Exception):
    """The socket is gone (or too slow to take a message): stop serving it."""


class McpWebSocket:
    """The `/mcp/ws` endpoint as an ASGI application."""

    def __init__(
        self,
        server: McpServer,
        authenticate: Authenticate,
        policy: HostPolicy,
        drain: trio.Event | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        *,
        protected: ProtectedResource | None = None,
    ) -> None:
        """`protected` adds OAuth access tokens beside the API keys `authenticate` checks."""
        self.server = server
        self.authenticate = authenticate
        self.protected = protected or ProtectedResource(authenticate)
        self.policy = policy
        self.drain = trio.Event() if drain is None else drain
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        headers = header_map(scope)
        offered = [p.strip() for p in scope.get("subprotocols", ())]
        if not self.policy.host_ok(headers.get("host")):
            await self._deny(scope, send, 421, "this server does not answer for that Host")
            return
        if not self.policy.origin_ok(headers.get("origin"), headers.get("host")):
            await self._deny(scope, send, 403, "requests from this Origin are not accepted")
            return
        if SUBPROTOCOL not in offered:
            await self._deny(scope, send, 400, "offer the WebSocket subprotocol 'mcp'")
            return
        key = api_key_from(headers)
        if key is None:
            smuggled = [p for p in offered if p.startswith(AUTH_SUBPROTOCOL_PREFIX)]
            key = smuggled[0][len(AUTH_SUBPROTOCOL_PREFIX) :] if smuggled else None
        base = self.protected.base_url(scope.get("scheme", "ws"), headers.get("host"))
        resource = self.protected.resource(base)
        caller = None if key is None else await self.protected.identify(key, resource)
        if key is None or caller is None:
            reason = (
                "send an API key or an OAuth access token"
                if key is None
                else "the API key or access token is not valid, expired, revoked or for another resource"
            )
            challenge = self.protected.challenge(base, None if key is None else "invalid_token")
            await self._deny(scope, send, 401, reason, {"www-authenticate": challenge})
            return
        try:
            ctx = self.server.open_session(caller.tenant_id, expires=False)  # the socket ends it
        except SessionLimitReached as exc:
            await self._deny(scope, send, 503, str(exc))
            return
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        try:
            await Connection(self, ctx, key, receive, send, resource).serve()
        finally:
            self.server.sessions.delete(ctx.session_id, ctx.tenant_id)

    @staticmethod
    async def _deny(
        scope: Scope, send: Send, status: int, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
            raw.append((b"content-type", b"application/json"))
            body = encode({"error": reason})
            await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
            await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        else:
            await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": reason[:120]})


class Connection:
    def __init__(
        self,
        endpoint: McpWebSocket,
        ctx: SessionContext,
        key: str,
        receive: Receive,
        send: Send,
        resource: str,
    ) -> None:
        self.endpoint = endpoint
        self.server = endpoint.server
        self.ctx = ctx
        self.key = key
        self.resource = resource  # the MCP URL an access token must be for
        self.receive = receive
        self._send = send
        self._send_lock = trio.Lock()
        self._limit = trio.Semaphore(MAX_CONCURRENT)
        self._closed = False
        self._busy = 0  # requests under way
        self._idle_timer = trio.CancelScope(deadline=self._idle_deadline())

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._close_on_drain, nursery.cancel_scope)
            nursery.start_soon(self._close_when_idle, nursery.cancel_scope)
            try:
                await self._read_loop(nursery)
            except _Closed:
                pass
            nursery.cancel_scope.cancel()

    async def _close_on_drain(self, cancel: trio.CancelScope) -> None:
        await self.endpoint.drain.wait()
        await self.close(CLOSE_GOING_AWAY, "server shutting down")
        cancel.cancel()

    def _idle_deadline(self) -> float:
        return math.inf if self._busy else trio.current_time() + self.endpoint.idle_timeout_s

    def _not_idle(self) -> None:
        """A message arrived or a request started or ended: the idle time starts over."""
        self._idle_timer.deadline = self._idle_deadline()

    async def _close_when_idle(self, cancel: trio.CancelScope) -> None:
        with self._idle_timer:
            await trio.sleep_forever()
        await self.close(CLOSE_NORMAL, f"idle for {self.endpoint.idle_timeout_s:g} s")
        cancel.cancel()

    async def _read_loop(self, nursery: trio.Nursery) -> None:
        while True:
            event = await self.receive()
            self._not_idle()
            kind = event["type"]
            if kind == "websocket.disconnect":
                self._closed = True
                return
            if kind != "websocket.receive":
                continue
            text = event.get("text")
            if text is None:
                await self.close(
                    CLOSE_UNSUPPORTED_DATA, "binary frames are not supported: send JSON text frames"
                )
                return
            if len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES:
                await self.close(CLOSE_TOO_BIG, f"messages are limited to {MAX_FRAME_BYTES} bytes")
                return
            try:
                message = parse_message(text)
            except JsonRpcError as exc:
                await self.send(encode(exc.response()))
                continue
            if isinstance(message, Notification | Response):
                await self.server.handle(message, self.ctx)
                continue
            await self._limit.acquire()
            self._busy += 1
            self._not_idle()
            nursery.start_soon(self._serve_request, message)

    async def _serve_request(self, request: Request) -> None:
        try:
            caller = await self.endpoint.protected.identify(self.key, self.resource)
            if caller is None or caller.tenant_id != self.ctx.tenant_id:
                err = JsonRpcError(
                    -32001, "Unauthorized: the API key or access token was revoked", request.id
                )
                await self.send(encode(err.response()))
                await self.close(CLOSE_POLICY, "credential revoked or expired")
                return
            if request.method == protocol.TOOLS_CALL:
                needed = self.server.tools.scope_of(request.params.get("name"))
                if not caller.may(needed):
                    err = JsonRpcError(-32003, f"Forbidden: this tool needs the scope {needed}", request.id)
                    await self.send(encode(err.response()))
                    return

            async def emit(notification: Notification) -> None:
                await self.send(encode(notification))

            if self._is_modern(request):
                response: Response | None = await self.server.handle_modern(request, self.ctx.tenant_id, emit)
            else:
                response = await self.server.handle(request, self.ctx, emit)
            if response is not None:
                await self.send(encode(response))
        except _Closed:
            pass
        finally:
            self._busy -= 1
            self._not_idle()
            self._limit.release()

    def _is_modern(self, request: Request) -> bool:
        version = protocol.modern_version(request.params)
        if version is None or request.method == protocol.INITIALIZE:
            return False
        if version in protocol.MODERN_VERSIONS:
            return True
        session = self.server.sessions.lookup(self.ctx.session_id, self.ctx.tenant_id)
        return session is None or not session.initialized  # an unknown version: say which are supported

    async def send(self, payload: bytes) -> None:
        async with self._send_lock:
            if self._closed:
                raise _Closed
            with trio.move_on_after(SEND_TIMEOUT_S) as scope:
                await self._send({"type": "websocket.send", "text": payload.decode()})
            if scope.cancelled_caught:
                self._closed = True
                log.warning("closing a WebSocket whose client does not read")
                raise _Closed

    async def close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if self._closed:
                return
            self._closed = True
            with trio.move_on_after(SEND_TIMEOUT_S):
                await self._send({"type": "websocket.close", "code": code, "reason": reason})


def host_policy(config: Config) -> HostPolicy:
    return HostPolicy.for_bind(config.http_bind.host, config.mcp_allowed_hosts, config.mcp_allowed_origins)


@attrs.frozen
class McpEndpoints:
    """The two MCP endpoints of a daemon, each with its own sessions over one tool registry."""

    http: McpHttp
    websocket: McpWebSocket

    @classmethod
    def build(
        cls,
        db: Database,
        tools: ToolRegistry,
        config: Config,
        clock: Clock,
        drain: trio.Event,
        authenticate: Authenticate | None = None,
        protected: ProtectedResource | None = None,
    ) -> McpEndpoints:
        """`authenticate` defaults to a database lookup per request (the daemon passes a KeyCache);
        `protected` adds OAuth access tokens (the daemon's built-in server or an external one)."""
        authenticate = authenticate or database_authenticator(db)
        policy = host_policy(config)
        # Bounded: 10,000 sessions, mcp_sessions_per_tenant of them per tenant (one tenant
        # cannot take them all), HTTP sessions and sockets counted together.
        sessions = SessionStore(
            clock.now, max_per_tenant=config.mcp_sessions_per_tenant, idle_timeout_s=config.mcp_session_idle
        )
        return cls(
            McpHttp(McpServer(tools, sessions), authenticate, policy, protected=protected),
            McpWebSocket(
                McpServer(tools, sessions),
                authenticate,
                policy,
                drain,
                config.mcp_ws_idle,
                protected=protected,
            ),
        )

    def sessions_open(self) -> int:
        """MCP sessions open now, on both endpoints (they share one store)."""
        return len(self.http.server.sessions)

    def mount(self, app: Any) -> None:
        """Put the MCP endpoints in front of a Quart app (Quart's ASGI-middleware hook)."""
        app.asgi_app = McpRouter(app.asgi_app, self.http, self.websocket)
