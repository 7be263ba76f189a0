"""The transport-independent MCP server: one parsed message in, at most one response out.

Transports (Streamable HTTP, WebSocket) authenticate the caller, resolve or create the
session (`McpServer.open_session`), parse the message and call `handle`. A transport
that must answer an unknown session with HTTP 404 checks `sessions.lookup` first;
`handle` answers one with a JSON-RPC error.

TODO: progress notifications (`notifications/progress` for a `_meta.progressToken`)
and acting on `notifications/cancelled` (cancelling the in-flight `tools/call`) are
not done yet: both need the transport's outgoing stream and a per-request cancel
scope. Today `notifications/cancelled` is accepted and ignored, which the spec allows.
"""

from __future__ import annotations

import logging

import attrs

from deneva import __version__
from deneva.mcp import protocol
from deneva.mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    JsonRpcError,
    Message,
    Notification,
    Request,
    Response,
    encode,
    error_response,
    parse_message,
    result_response,
)
from deneva.mcp.sessions import Session, SessionStore
from deneva.mcp.tools import ToolContext, ToolRegistry

log = logging.getLogger(__name__)


@attrs.frozen
class SessionContext:
    """The authenticated caller and the session the message belongs to."""

    tenant_id: str
    session_id: str


class McpServer:
    def __init__(
        self, tools: ToolRegistry, sessions: SessionStore, server_version: str = __version__
    ) -> None:
        self.tools = tools
        self.sessions = sessions
        self.server_version = server_version

    def open_session(self, tenant_id: str) -> SessionContext:
        """A new session for an authenticated tenant (SessionLimitReached when full)."""
        session = self.sessions.create(tenant_id)
        return SessionContext(tenant_id=tenant_id, session_id=session.id)

    async def handle_raw(self, raw: bytes | str, ctx: SessionContext) -> bytes | None:
        """Parse, handle and encode; parse failures become error responses."""
        try:
            message = parse_message(raw)
        except JsonRpcError as exc:
            return encode(exc.response())
        response = await self.handle(message, ctx)
        return None if response is None else encode(response)

    async def handle(self, message: Message, ctx: SessionContext) -> Response | None:
        """Answer a request; notifications and client responses get None."""
        if isinstance(message, Response):
            return None  # deneva sends no requests to clients, so no reply is awaited
        session = self.sessions.touch(ctx.session_id, ctx.tenant_id)
        if isinstance(message, Notification):
            return None  # initialized, cancelled, unknown: nothing to answer (see module TODO)
        if session is None:
            return error_response(message.id, INVALID_REQUEST, "Invalid request: unknown or expired session")
        try:
            return await self._dispatch(message, session, ctx)
        except JsonRpcError as exc:
            return error_response(message.id, exc.error.code, exc.error.message, exc.error.data)
        except Exception:
            log.exception("MCP request %s failed", message.method)
            return error_response(message.id, INTERNAL_ERROR, "Internal error")

    async def _dispatch(self, request: Request, session: Session, ctx: SessionContext) -> Response:
        method, params = request.method, request.params
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
            name = params.get("name")
            if not isinstance(name, str) or not name:
                raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "name" must be a non-empty string')
            arguments = params.get("arguments", {})
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "arguments" must be an object')
            tool_ctx = ToolContext(tenant_id=ctx.tenant_id, session_id=session.id, request_id=request.id)
            result = await self.tools.call_tool(name, arguments, tool_ctx)
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
