"""The transport-independent MCP server: one parsed message in, at most one response out.

Two protocol generations share it:

- **Legacy** (2025-06-18, 2025-11-25): a session opened by `initialize`. Transports
  authenticate the caller, resolve or create the session (`open_session`) and call
  `handle`. A transport that must answer an unknown session with HTTP 404 checks
  `sessions.lookup` first; `handle` answers one with a JSON-RPC error.
- **Modern** (2026-07-28): stateless. Every request carries its version and the
  client's capabilities in `_meta`; `handle_modern` serves it with no session.
  Results carry `resultType` and the server's identity in `_meta`.

Progress: a request whose `_meta.progressToken` is set gets `notifications/progress`
through the `emit` callback the transport passes (an SSE stream, a WebSocket).
Cancellation: `notifications/cancelled` cancels the named in-flight request of the
same session (legacy); on Streamable HTTP 2026-07-28 closing the stream does it,
which the transport handles by cancelling the call.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from deneva import __version__
from deneva.mcp import protocol
from deneva.mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    JsonObject,
    JsonRpcError,
    Message,
    Notification,
    PreEncoded,
    Request,
    RequestId,
    Response,
    encode,
    error_response,
    parse_message,
    result_response,
)
from deneva.mcp.sessions import Session, SessionStore
from deneva.mcp.tools import ProgressFn, ToolContext, ToolRegistry

log = logging.getLogger(__name__)

# emit(notification): send a server-to-client notification for the request being served.
Emit = Callable[[Notification], Awaitable[None]]


@attrs.frozen
class SessionContext:
    """The authenticated caller and the session the message belongs to."""

    tenant_id: str
    session_id: str


def _progress_fn(params: JsonObject, emit: Emit | None) -> ProgressFn | None:
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if emit is None or not (
        isinstance(token, str) or (isinstance(token, int) and not isinstance(token, bool))
    ):
        return None

    async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
        body: JsonObject = {"progressToken": token, "progress": done}
        if total is not None:
            body["total"] = total
        if message:
            body["message"] = message
        await emit(Notification(protocol.PROGRESS, body))

    return progress


class McpServer:
    def __init__(
        self, tools: ToolRegistry, sessions: SessionStore, server_version: str = __version__
    ) -> None:
        self.tools = tools
        self.sessions = sessions
        self.server_version = server_version
        # In-flight legacy requests, for notifications/cancelled: (session, request id) -> scope.
        self._inflight: dict[tuple[str, RequestId], trio.CancelScope] = {}
        self._meta: JsonObject = {protocol.META_SERVER_INFO: protocol.server_info(server_version)}

    def open_session(self, tenant_id: str, *, expires: bool = True) -> SessionContext:
        """A new session for an authenticated tenant (SessionLimitReached when full);
        `expires=False` for a transport that ends its sessions itself (a WebSocket)."""
        session = self.sessions.create(tenant_id, expires=expires)
        return SessionContext(tenant_id=tenant_id, session_id=session.id)

    async def handle_raw(self, raw: bytes | str, ctx: SessionContext) -> bytes | None:
        """Parse, handle and encode; parse failures become error responses."""
        try:
            message = parse_message(raw)
        except JsonRpcError as exc:
            return encode(exc.response())
        response = await self.handle(message, ctx)
        return None if response is None else encode(response)

    # -- legacy: sessions ---------------------------------------------------------------

    async def handle(
        self, message: Message, ctx: SessionContext, emit: Emit | None = None
    ) -> Response | None:
        """Answer a request; notifications and client responses get None."""
        if isinstance(message, Response):
            return None  # deneva sends no requests to clients, so no reply is awaited
        session = self.sessions.touch(ctx.session_id, ctx.tenant_id)
        if isinstance(message, Notification):
            if message.method == protocol.CANCELLED and session is not None:
                self._cancel(ctx.session_id, message.params.get("requestId"))
            return None  # initialized, unknown: nothing to answer
        if session is None:
            return error_response(message.id, INVALID_REQUEST, "Invalid request: unknown or expired session")
        key = (ctx.session_id, message.id)
        with trio.CancelScope() as scope:
            if message.method == protocol.TOOLS_CALL and key not in self._inflight:
                self._inflight[key] = scope
            try:
                return await self._guarded(self._dispatch(message, session, ctx, emit), message)
            finally:
                if self._inflight.get(key) is scope:
                    del self._inflight[key]
        return error_response(message.id, protocol.REQUEST_CANCELLED, "Request cancelled by the client")

    def _cancel(self, session_id: str, request_id: Any) -> None:
        if isinstance(request_id, str | int) and not isinstance(request_id, bool):
            scope = self._inflight.get((session_id, request_id))
            if scope is not None:
                scope.cancel()

    async def _guarded(self, work: Awaitable[Response], request: Request) -> Response:
        try:
            return await work
        except JsonRpcError as exc:
            return error_response(request.id, exc.error.code, exc.error.message, exc.error.data)
        except Exception:
            log.exception("MCP request %s failed", request.method)
            return error_response(request.id, INTERNAL_ERROR, "Internal error")

    async def _dispatch(
        self, request: Request, session: Session, ctx: SessionContext, emit: Emit | None
    ) -> Response:
        method = request.method
        if method == protocol.INITIALIZE:
            return self._initialize(request, session)
        # Lenient on purpose: requests are served once `initialize` has been answered, even
        # if `notifications/initialized` has not arrived yet.
        if not session.initialized and not protocol.allowed_before_initialize(method):
            return error_response(
                request.id, INVALID_REQUEST, f"Invalid request: {method} is not allowed before initialize"
            )
        if method == protocol.PING:
            return result_response(request.id, protocol.ping_result())
        if method == protocol.TOOLS_LIST:
            return result_response(request.id, self.tools.list_tools())
        if method == protocol.TOOLS_CALL:
            result = await self._call_tool(request, ctx.tenant_id, session.id, emit)
            return result_response(request.id, result)
        return error_response(request.id, METHOD_NOT_FOUND, f"Method not found: {method}")

    def _initialize(self, request: Request, session: Session) -> Response:
        if session.initialized:
            return error_response(
                request.id, INVALID_REQUEST, "Invalid request: session is already initialized"
            )
        params = protocol.parse_initialize_params(request.params, request.id)
        version = protocol.negotiate_version(params.protocol_version)
        self.sessions.mark_initialized(session.id, session.tenant_id, version)
        return result_response(request.id, protocol.initialize_result(version, self.server_version))

    async def _call_tool(
        self, request: Request, tenant_id: str, session_id: str | None, emit: Emit | None
    ) -> JsonObject:
        params = request.params
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise JsonRpcError(
                INVALID_PARAMS, 'Invalid params: "name" must be a non-empty string', request.id
            )
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "arguments" must be an object', request.id)
        tool_ctx = ToolContext(
            tenant_id=tenant_id,
            session_id=session_id,
            request_id=request.id,
            progress=_progress_fn(params, emit),
        )
        return await self.tools.call_tool(name, arguments, tool_ctx)

    # -- modern: stateless ----------------------------------------------------------------

    async def handle_modern(self, request: Request, tenant_id: str, emit: Emit | None = None) -> Response:
        """Serve one stateless (2026-07-28) request; `_meta` must name a supported version."""
        return await self._guarded(self._dispatch_modern(request, tenant_id, emit), request)

    async def _dispatch_modern(self, request: Request, tenant_id: str, emit: Emit | None) -> Response:
        protocol.check_modern_meta(request.params, request.id)
        method = request.method
        if method == protocol.DISCOVER:
            result = protocol.discover_result(self.server_version)
        elif method == protocol.TOOLS_LIST:
            result = {**self.tools.list_tools(), "ttlMs": 300_000, "cacheScope": "public"}
        elif method == protocol.TOOLS_CALL:
            result = await self._call_tool(request, tenant_id, None, emit)
        elif method == protocol.INITIALIZE:
            raise JsonRpcError(
                INVALID_REQUEST,
                "Invalid request: initialize belongs to the session protocol (2025-06-18, 2025-11-25); "
                "a 2026-07-28 request needs no handshake",
                request.id,
            )
        else:
            return error_response(request.id, METHOD_NOT_FOUND, f"Method not found: {method}")
        fields = {"resultType": "complete", "_meta": self._meta}
        if isinstance(result, PreEncoded):
            return result_response(request.id, result.with_fields(**fields))
        return result_response(request.id, {**result, **fields})
