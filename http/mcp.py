"""MCP over Streamable HTTP at `/mcp`: both protocol generations on one endpoint.

It is plain ASGI mounted in front of the Quart app (`mount_mcp`), not a Quart route:
a cache-hit `tools/call` is a few hundred microseconds of work, and Quart's request
machinery would double it; streaming and client-disconnect handling are also simpler
at this level.

Order of checks on every request: the path's methods (405), Host (421), Origin (403),
the API key or OAuth access token (401, with a challenge naming the protected resource
metadata: `deneva.oauth.resource`), then the protocol; a `tools/call` whose scope the
token lacks is 403 `insufficient_scope`.

- **2026-07-28** (stateless): chosen when `MCP-Protocol-Version` or the body's
  `_meta` names a modern version (or names any version with no session in play).
  `MCP-Protocol-Version`, `Mcp-Method` and, for `tools/call`, `Mcp-Name` must be
  present and equal the body (400, -32020 otherwise); an unknown version is 400
  with -32022 listing what is supported; an unknown method is 404 with -32601.
  `Mcp-Session-Id` is ignored.
- **2025-06-18 / 2025-11-25**: `initialize` opens a session (`Mcp-Session-Id` in the
  answer); later requests must carry it (400 without, 404 when unknown or expired,
  including another tenant's); `DELETE` ends it. A `MCP-Protocol-Version` other
  than the session's is 400. GET is 405: deneva sends nothing unprompted.
- Requests are answered as JSON, or as an SSE stream when the client accepts one
  and asked for progress (`_meta.progressToken`), so progress notifications
  precede the result. Notifications get 202. Closing the connection cancels the
  call. Bodies over `MAX_BODY_BYTES` get 413, a body not sent within
  `BODY_TIMEOUT_S` gets 408.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from deneva import tenants
from deneva.db import Database
from deneva.errors import DatabaseError
from deneva.mcp import protocol
from deneva.mcp.jsonrpc import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    JsonRpcError,
    Notification,
    Request,
    Response,
    encode,
    error_response,
    parse_message,
)
from deneva.mcp.server import McpServer, SessionContext
from deneva.mcp.sessions import SessionLimitReached, is_valid_session_id
from deneva.oauth.resource import Caller, ProtectedResource

log = logging.getLogger("deneva.http.mcp")

MCP_PATH = "/mcp"
MAX_BODY_BYTES = 1024 * 1024
BODY_TIMEOUT_S = 30.0
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# authenticate(api key) -> tenant id, or None when the key is unknown or revoked.
Authenticate = Callable[[str], Awaitable[str | None]]


def database_authenticator(db: Database) -> Authenticate:
    """Look the key up on every request (one round trip): a revoked key stops at once."""

    async def authenticate(key: str) -> str | None:
        if tenants.parse_key(key) is None:
            return None
        tenant = await db.run(lambda conn: tenants.authenticate(conn, key))
        return None if tenant is None else str(tenant)

    return authenticate


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers, names lower-cased; repeated headers joined with ", "."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def api_key_from(headers: dict[str, str]) -> str | None:
    """`Authorization: Bearer <key>` or `X-Api-Key: <key>`."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("x-api-key", "").strip()
    return key or None


def _hostname(value: str) -> str | None:
    """The host of a `Host` header value ("example.com:8787", "[::1]:80"), lower-cased."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else None
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.rsplit(":", 1)[0] if ":" in value else value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class HostPolicy:
    """Which Host and Origin values are accepted (DNS-rebinding protection).

    `hosts=None` accepts any Host (a daemon bound to a public address, behind its own
    name). Origins: the configured list, else any origin whose host is an accepted
    host, else (hosts=None) one whose host equals the request's Host.
    """

    hosts: frozenset[str] | None
    origins: frozenset[str] | None = None

    @classmethod
    def for_bind(
        cls, bind_host: str, hosts: Iterable[str] | None = None, origins: Iterable[str] | None = None
    ) -> HostPolicy:
        if hosts is not None:
            allowed: frozenset[str] | None = frozenset(h.strip("[]").lower() for h in hosts)
        elif _is_loopback(bind_host.strip("[]").lower()):
            allowed = frozenset(LOOPBACK_NAMES)
        else:
            allowed = None
        return cls(allowed, None if origins is None else frozenset(o.rstrip("/").lower() for o in origins))

    def host_ok(self, host_header: str | None) -> bool:
        if self.hosts is None:
            return True
        host = _hostname(host_header or "")
        return host is not None and host in self.hosts

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        if origin is None:
            return True  # not a browser: nothing to rebind
        origin = origin.strip().lower().rstrip("/")
        if self.origins is not None:
            return origin in self.origins
        try:
            parts = urlsplit(origin)
            origin_host = parts.hostname
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not origin_host:
            return False
        if self.hosts is not None:
            return origin_host in self.hosts
        return origin_host == _hostname(host_header or "")


def _decode_header_value(value: str) -> str | None:
    """A header value, decoding the `=?base64?...?=` sentinel form; None if undecodable."""
    if value.startswith("=?base64?") and value.endswith("?=") and len(value) >= 11:
        try:
            return base64.b64decode(value[9:-2], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    return value


class ClientGone(Exception):
    """The client disconnected before its request was read: there is no one to answer."""


class HttpError(Exception):
    """An HTTP answer other than 200: status, optional JSON-RPC error body, extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: int = INVALID_REQUEST,
        *,
        id: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.response = error_response(id, code, message, data)
        self.headers = headers or {}


async def send_response(
    send: Send, status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if body:
        raw.append((b"content-type", b"application/json"))
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def read_body(
    receive: Receive, limit: int = MAX_BODY_BYTES, timeout_s: float = BODY_TIMEOUT_S
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(timeout_s) as scope:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"Request body larger than the limit of {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    if scope.cancelled_caught:
        raise HttpError(408, f"Request body not received within {timeout_s:.0f} s")
    return b"".join(chunks)


def _accepts(accept: str | None) -> tuple[bool, bool]:
    """(accepts JSON, accepts SSE) from an Accept header; absent means anything."""
    if accept is None:
        return True, True
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    anything = "*/*" in types
    return (
        anything or "application/json" in types or "application/*" in types,
        anything or "text/event-stream" in types or "text/*" in types,
    )


def _wants_progress(message: Request) -> bool:
    meta = message.params.get("_meta")
    return isinstance(meta, dict) and "progressToken" in meta


def _sse_event(payload: bytes) -> bytes:
    return b"event: message\ndata: " + payload + b"\n\n"


class McpHttp:
    """The `/mcp` endpoint as an ASGI application."""

    def __init__(
        self,
        server: McpServer,
        authenticate: Authenticate,
        policy: HostPolicy,
        body_timeout_s: float = BODY_TIMEOUT_S,
        *,
        protected: ProtectedResource | None = None,
    ) -> None:
        """`protected` adds OAuth access tokens beside the API keys `authenticate` checks."""
        self.server = server
        self.authenticate = authenticate
        self.policy = policy
        self.body_timeout_s = body_timeout_s
        self.protected = protected or ProtectedResource(authenticate)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        except ClientGone:
            return
        except DatabaseError:
            log.warning("MCP request failed: database unavailable")
            exc = HttpError(503, "Service unavailable: the database is not reachable; retry later")
            await send_response(send, 503, encode(exc.response), {"retry-after": "5"})
        except HttpError as exc:
            await send_response(send, exc.status, encode(exc.response), exc.headers)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("POST", "GET", "DELETE"):
            raise HttpError(
                405, f"Method {method} not allowed on {MCP_PATH}", headers={"allow": "POST, DELETE"}
            )
        headers = header_map(scope)
        if not self.policy.host_ok(headers.get("host")):
            raise HttpError(421, "Misdirected request: this server does not answer for that Host")
        if not self.policy.origin_ok(headers.get("origin"), headers.get("host")):
            raise HttpError(403, "Forbidden: requests from this Origin are not accepted")
        base = self.protected.base_url(scope.get("scheme", "http"), headers.get("host"))
        caller = await self._caller(headers, base)
        tenant_id = caller.tenant_id
        if method == "GET":
            raise HttpError(
                405,
                "This server sends no unprompted messages: there is no GET stream",
                headers={"allow": "POST, DELETE"},
            )
        if method == "DELETE":
            await self._delete(headers, tenant_id, send)
            return
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise HttpError(415, "Unsupported media type: the body must be application/json")
        json_ok, sse_ok = _accepts(headers.get("accept"))
        if not (json_ok or sse_ok):
            raise HttpError(
                406, "Not acceptable: the client must accept application/json or text/event-stream"
            )
        body = await read_body(receive, timeout_s=self.body_timeout_s)
        try:
            message = parse_message(body)
        except JsonRpcError as exc:
            raise HttpError(400, exc.error.message, exc.error.code, id=exc.id) from None
        if isinstance(message, Response):
            await send_response(send, 202)  # deneva sends no requests, so this answers nothing
            return
        if isinstance(message, Request) and message.method == protocol.TOOLS_CALL:
            needed = self.server.tools.scope_of(message.params.get("name"))
            if not caller.may(needed):
                raise HttpError(
                    403,
                    f"Forbidden: this tool needs the scope {needed}",
                    id=message.id,
                    headers={
                        "www-authenticate": self.protected.challenge(base, "insufficient_scope", needed)
                    },
                )
        if self._is_modern(message, headers):
            await self._modern(message, headers, tenant_id, receive, send, json_ok, sse_ok)
        else:
            await self._legacy(message, headers, tenant_id, receive, send, json_ok, sse_ok)

    async def _caller(self, headers: dict[str, str], base: str) -> Caller:
        key = api_key_from(headers)
        if key is None:
            raise HttpError(
                401,
                "Unauthorized: send an API key or an OAuth access token as 'Authorization: Bearer <token>'",
                headers={"www-authenticate": self.protected.challenge(base)},
            )
        caller = await self.protected.identify(key, self.protected.resource(base))
        if caller is None:
            raise HttpError(
                401,
                "Unauthorized: the API key or access token is not valid, expired, revoked or for "
                "another resource",
                headers={"www-authenticate": self.protected.challenge(base, "invalid_token")},
            )
        return caller

    @staticmethod
    def _is_modern(message: Request | Notification, headers: dict[str, str]) -> bool:
        header = headers.get("mcp-protocol-version")
        if header is not None and header.strip() not in protocol.SUPPORTED_VERSIONS:
            return True
        if header is not None:
            return protocol.modern_version(message.params) in protocol.MODERN_VERSIONS
        if message.method == protocol.INITIALIZE or "mcp-session-id" in headers:
            return False
        return protocol.modern_version(message.params) is not None

    # -- 2026-07-28 ----------------------------------------------------------------------

    async def _modern(
        self,
        message: Request | Notification,
        headers: dict[str, str],
        tenant_id: str,
        receive: Receive,
        send: Send,
        json_ok: bool,
        sse_ok: bool,
    ) -> None:
        if isinstance(message, Notification):
            await send_response(send, 202)  # this revision defines none over HTTP; accepted and ignored
            return
        self._check_modern_headers(message, headers)
        if message.method not in (protocol.DISCOVER, protocol.TOOLS_LIST, protocol.TOOLS_CALL):
            if message.method == protocol.INITIALIZE:
                await self._respond(
                    send, 400, await self.server.handle_modern(message, tenant_id), {}, json_ok
                )
                return
            response = error_response(message.id, METHOD_NOT_FOUND, f"Method not found: {message.method}")
            await send_response(send, 404, encode(response))
            return

        async def handle(emit: Any) -> Response:
            return await self.server.handle_modern(message, tenant_id, emit)

        await self._answer(message, handle, receive, send, {}, json_ok, sse_ok, modern=True)

    def _check_modern_headers(self, request: Request, headers: dict[str, str]) -> None:
        header_version = headers.get("mcp-protocol-version")
        if (
            header_version is not None
            and header_version.strip() not in protocol.MODERN_VERSIONS
            and protocol.modern_version(request.params) is None
        ):
            exc = protocol.unsupported_version(header_version.strip(), request.id)
            raise HttpError(400, exc.error.message, exc.error.code, id=request.id, data=exc.error.data)
        try:
            version = protocol.check_modern_meta(request.params, request.id)
        except JsonRpcError as exc:
            raise HttpError(
                400, exc.error.message, exc.error.code, id=request.id, data=exc.error.data
            ) from None

        def mismatch(text: str) -> HttpError:
            return HttpError(400, f"Header mismatch: {text}", protocol.HEADER_MISMATCH, id=request.id)

        if header_version is None:
            raise mismatch("the MCP-Protocol-Version header is required")
        if header_version.strip() != version:
            raise mismatch(f"MCP-Protocol-Version {header_version!r} does not match _meta's {version!r}")
        method = headers.get("mcp-method")
        if method is None:
            raise mismatch("the Mcp-Method header is required")
        if method.strip() != request.method:
            raise mismatch(f"Mcp-Method {method!r} does not match the body's method {request.method!r}")
        if request.method == protocol.TOOLS_CALL:
            raw_name = headers.get("mcp-name")
            if raw_name is None:
                raise mismatch("the Mcp-Name header is required for tools/call")
            name = _decode_header_value(raw_name.strip())
            if name is None:
                raise mismatch("the Mcp-Name header is not valid base64 UTF-8")
            if name != request.params.get("name"):
                raise mismatch(f"Mcp-Name {name!r} does not match the body's tool name")

    # -- 2025-06-18 / 2025-11-25 -----------------------------------------------------------

    async def _legacy(
        self,
        message: Request | Notification,
        headers: dict[str, str],
        tenant_id: str,
        receive: Receive,
        send: Send,
        json_ok: bool,
        sse_ok: bool,
    ) -> None:
        if isinstance(message, Request) and message.method == protocol.INITIALIZE:
            await self._initialize(message, tenant_id, send, json_ok)
            return
        ctx = self._session(headers, tenant_id)
        if isinstance(message, Notification):
            await self.server.handle(message, ctx)
            await send_response(send, 202)
            return
        extra = {"mcp-session-id": ctx.session_id}

        async def handle(emit: Any) -> Response | None:
            return await self.server.handle(message, ctx, emit)

        await self._answer(message, handle, receive, send, extra, json_ok, sse_ok, modern=False)

    async def _initialize(self, request: Request, tenant_id: str, send: Send, json_ok: bool) -> None:
        try:
            ctx = self.server.open_session(tenant_id)
        except SessionLimitReached as exc:
            raise HttpError(
                503, f"Service unavailable: {exc}", id=request.id, headers={"retry-after": "60"}
            ) from None
        response = await self.server.handle(request, ctx)
        assert response is not None
        if response.is_error:
            self.server.sessions.delete(ctx.session_id, tenant_id)
            await self._respond(send, 200, response, {}, json_ok)
            return
        await self._respond(send, 200, response, {"mcp-session-id": ctx.session_id}, json_ok)

    def _session(self, headers: dict[str, str], tenant_id: str) -> SessionContext:
        sid = headers.get("mcp-session-id")
        if sid is None:
            raise HttpError(400, "Bad request: Mcp-Session-Id header is required (send initialize first)")
        sid = sid.strip()
        if not is_valid_session_id(sid):
            raise HttpError(400, "Bad request: Mcp-Session-Id is malformed")
        session = self.server.sessions.lookup(sid, tenant_id)
        if session is None:
            raise HttpError(404, "Session not found or expired: send initialize again")
        version = headers.get("mcp-protocol-version")
        if version is not None and session.protocol_version and version.strip() != session.protocol_version:
            raise HttpError(
                400,
                f"Bad request: MCP-Protocol-Version {version.strip()!r} is not the session's "
                f"negotiated {session.protocol_version!r}",
            )
        return SessionContext(tenant_id, sid)

    async def _delete(self, headers: dict[str, str], tenant_id: str, send: Send) -> None:
        sid = headers.get("mcp-session-id")
        if sid is None:
            raise HttpError(400, "Bad request: Mcp-Session-Id header is required")
        if not self.server.sessions.delete(sid.strip(), tenant_id):
            raise HttpError(404, "Session not found or expired")
        await send_response(send, 200)

    # -- answering -------------------------------------------------------------------------

    async def _respond(
        self, send: Send, status: int, response: Response, headers: dict[str, str], json_ok: bool
    ) -> None:
        body = encode(response)
        if json_ok:
            await send_response(send, status, body, headers)
            return
        await self._sse_start(send, status, headers)
        await send({"type": "http.response.body", "body": _sse_event(body), "more_body": False})

    @staticmethod
    async def _sse_start(send: Send, status: int, headers: dict[str, str]) -> None:
        raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        raw += [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw})

    async def _answer(
        self,
        request: Request,
        handle: Callable[[Any], Awaitable[Response | None]],
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        json_ok: bool,
        sse_ok: bool,
        *,
        modern: bool,
    ) -> None:
        stream = sse_ok and (not json_ok or _wants_progress(request))
        if request.method != protocol.TOOLS_CALL:
            response = await handle(None)
            if response is not None:
                await self._respond(send, 200, response, headers, json_ok)
            return
        if not stream and not self.server.tools.may_wait(request.params.get("name")):
            response = await handle(None)  # short: it finishes even if the client has gone
            if response is not None:
                await send_response(send, 200, encode(response), headers)
            return
        if not stream:
            # A call that may wait (refresh_report with wait): a client that hangs up cancels it.
            response = await self._watching_disconnect(receive, lambda: handle(None))
            if response is not None:
                await send_response(send, 200, encode(response), headers)
            return
        await self._sse_start(send, 200, headers)
        lock = trio.Lock()

        async def emit(notification: Notification) -> None:
            async with lock:
                await send(
                    {
                        "type": "http.response.body",
                        "body": _sse_event(encode(notification)),
                        "more_body": True,
                    }
                )

        response = await self._watching_disconnect(receive, lambda: handle(emit))
        async with lock:
            final = b"" if response is None else _sse_event(encode(response))
            await send({"type": "http.response.body", "body": final, "more_body": False})

    @staticmethod
    async def _watching_disconnect(
        receive: Receive, work: Callable[[], Awaitable[Response | None]]
    ) -> Response | None:
        """Run `work`; if the client disconnects first, cancel it and return None."""
        result: list[Response | None] = []

        async def watch(cancel: trio.CancelScope) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            cancel.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, nursery.cancel_scope)
            result.append(await work())
            nursery.cancel_scope.cancel()
        return result[0] if result else None


class McpRouter:
    """ASGI: `/mcp` (HTTP) and `/mcp/ws` (WebSocket) to deneva's MCP endpoints, the rest to Quart."""

    def __init__(self, app: ASGIApp, http: ASGIApp, websocket: ASGIApp | None = None) -> None:
        self.app = app
        self.http = http
        self.websocket = websocket

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        path = scope.get("path", "").rstrip("/")
        if kind == "http" and path == MCP_PATH:
            await self.http(scope, receive, send)
        elif kind == "websocket" and path == MCP_PATH + "/ws" and self.websocket is not None:
            await self.websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)
