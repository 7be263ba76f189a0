"""MCP lifecycle: version negotiation, the `initialize` result, what is allowed before it.

Negotiation (lifecycle, revisions 2025-06-18 and 2025-11-25): the client sends the
version it wants; the server answers with the same version if it supports it, else
with the latest version it supports, and the client decides whether to go on.
Before initialisation only `initialize` and `ping` requests are served; the client
then sends `notifications/initialized`.
"""

from __future__ import annotations

from typing import Any

import attrs

from deneva import __version__
from deneva.mcp.jsonrpc import INVALID_PARAMS, JsonObject, JsonRpcError, RequestId

SUPPORTED_VERSIONS: tuple[str, ...] = ("2025-06-18", "2025-11-25")
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
SERVER_NAME = "deneva"

INITIALIZE = "initialize"
PING = "ping"
INITIALIZED = "notifications/initialized"
CANCELLED = "notifications/cancelled"
TOOLS_LIST = "tools/list"
TOOLS_CALL = "tools/call"

# Requests a client may send before `initialize` has succeeded.
PRE_INIT_REQUESTS = frozenset({INITIALIZE, PING})


def negotiate_version(requested: object) -> str:
    """The version to answer: the requested one when supported, else the latest."""
    if isinstance(requested, str) and requested in SUPPORTED_VERSIONS:
        return requested
    return LATEST_VERSION


@attrs.frozen
class InitializeParams:
    protocol_version: str
    capabilities: JsonObject
    client_info: JsonObject


def parse_initialize_params(params: JsonObject, id: RequestId) -> InitializeParams:
    """Check the shape of `initialize` params; raise -32602 naming the bad field."""
    version = params.get("protocolVersion")
    if not isinstance(version, str) or not version:
        raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "protocolVersion" must be a non-empty string', id)
    capabilities: Any = params.get("capabilities", {})
    if not isinstance(capabilities, dict):
        raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "capabilities" must be an object', id)
    client_info: Any = params.get("clientInfo", {})
    if not isinstance(client_info, dict):
        raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "clientInfo" must be an object', id)
    return InitializeParams(version, capabilities, client_info)


def initialize_result(protocol_version: str, server_version: str = __version__) -> JsonObject:
    return {
        "protocolVersion": protocol_version,
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": SERVER_NAME, "version": server_version},
    }


def allowed_before_initialize(method: str) -> bool:
    """Whether a request with this method may be served before `initialize`."""
    return method in PRE_INIT_REQUESTS


def ping_result() -> JsonObject:
    return {}
