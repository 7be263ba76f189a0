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
# Revision 2026-07-28 is stateless: no handshake, no session; every request names its
# version and the client's capabilities in `_meta` (see `modern_meta`).
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)
ALL_VERSIONS: tuple[str, ...] = MODERN_VERSIONS + SUPPORTED_VERSIONS[::-1]
SERVER_NAME = "deneva"
INSTRUCTIONS = (
    "deneva serves analyses of the caller's Google Ads, Meta and TikTok accounts from a warm cache. "
    "Report tools answer at once with {data, cache, fetchedAt}; `stale: true` with `lastFailureCode` "
    "means the last sync failed and the data may be old. refresh_report queues a fresh fetch."
)

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

# Error codes the 2026-07-28 revision allocates (for HTTP, each answers 400).
HEADER_MISMATCH = -32020
MISSING_REQUIRED_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
# Not a spec code: a legacy request cancelled by `notifications/cancelled` (as LSP's RequestCancelled).
REQUEST_CANCELLED = -32800

INITIALIZE = "initialize"
DISCOVER = "server/discover"
PROGRESS = "notifications/progress"
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
        "serverInfo": server_info(server_version),
        "instructions": INSTRUCTIONS,
    }


def allowed_before_initialize(method: str) -> bool:
    """Whether a request with this method may be served before `initialize`."""
    return method in PRE_INIT_REQUESTS


def ping_result() -> JsonObject:
    return {}


def server_info(server_version: str = __version__) -> JsonObject:
    return {"name": SERVER_NAME, "version": server_version}


def modern_version(params: JsonObject) -> str | None:
    """The protocol version a 2026-07-28-style request names in `_meta`, if it names one."""
    meta = params.get("_meta")
    if isinstance(meta, dict):
        version = meta.get(META_VERSION)
        if isinstance(version, str):
            return version
    return None


def check_modern_meta(params: JsonObject, id: RequestId) -> str:
    """Validate a stateless request's `_meta`; return its version or raise the right error."""
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "_meta" must be an object', id)
    version = meta.get(META_VERSION)
    if not isinstance(version, str) or not version:
        raise JsonRpcError(INVALID_PARAMS, f'Invalid params: "_meta.{META_VERSION}" must be a string', id)
    if version not in MODERN_VERSIONS:
        raise unsupported_version(version, id)
    if not isinstance(meta.get(META_CAPABILITIES), dict):
        raise JsonRpcError(
            INVALID_PARAMS, f'Invalid params: "_meta.{META_CAPABILITIES}" must be an object', id
        )
    return version


def unsupported_version(requested: str, id: RequestId | None) -> JsonRpcError:
    return JsonRpcError(
        UNSUPPORTED_PROTOCOL_VERSION,
        f"Unsupported protocol version {requested!r}; this server supports {', '.join(ALL_VERSIONS)}",
        id,
        {"supported": list(ALL_VERSIONS), "requested": requested},
    )


def discover_result(server_version: str = __version__) -> JsonObject:
    return {
        "supportedVersions": list(ALL_VERSIONS),
        "capabilities": {"tools": {"listChanged": False}},
        "instructions": INSTRUCTIONS,
        "ttlMs": 3_600_000,
        "cacheScope": "public",
    }
