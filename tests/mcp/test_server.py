from __future__ import annotations

import json
from typing import Any

import pytest

from deneva.mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    Notification,
    Request,
    Response,
)
from deneva.mcp.protocol import INSTRUCTIONS
from deneva.mcp.server import McpServer, SessionContext
from deneva.mcp.sessions import SessionStore
from deneva.mcp.tools import Tool, ToolContext, ToolRegistry


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def add(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"sum": args["a"] + args["b"], "tenant": ctx.tenant_id, "session": ctx.session_id}


ADD = Tool(
    "add",
    "Add two integers.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 0}},
        "required": ["a"],
        "additionalProperties": False,
    },
    {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]},
    add,
)


def make_server(clock: FakeClock | None = None) -> McpServer:
    return McpServer(ToolRegistry([ADD]), SessionStore(clock or FakeClock(), idle_timeout_s=60), "9.9.9")


async def call(server: McpServer, ctx: SessionContext, id: int | str, method: str, **params: Any) -> Response:
    response = await server.handle(Request(id=id, method=method, params=params), ctx)
    assert response is not None
    assert response.id == id
    return response


def error_code(response: Response) -> int:
    assert response.error is not None
    return response.error.code


async def initialize(server: McpServer, ctx: SessionContext, version: str = "2025-06-18") -> Response:
    params = {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}
    return await call(server, ctx, 0, "initialize", **params)


async def test_full_flow() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    init = await initialize(server, ctx)
    assert init.result == {
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "deneva", "version": "9.9.9"},
        "instructions": INSTRUCTIONS,
    }
    assert await server.handle(Notification("notifications/initialized"), ctx) is None
    listed = await call(server, ctx, 1, "tools/list")
    assert listed.result is not None
    assert [t["name"] for t in listed.result["tools"]] == ["add"]
    assert listed.result["tools"][0]["outputSchema"]["required"] == ["sum"]
    called = await call(server, ctx, "c2", "tools/call", name="add", arguments={"a": 2, "b": 3})
    structured = {"sum": 5, "tenant": "t1", "session": ctx.session_id}
    assert called.result == {
        "content": [{"type": "text", "text": json.dumps(structured, separators=(",", ":"))}],
        "structuredContent": structured,
        "isError": False,
    }
    session = server.sessions.lookup(ctx.session_id, "t1")
    assert session is not None and session.initialized and session.protocol_version == "2025-06-18"


@pytest.mark.parametrize(
    ("asked", "answer"),
    [("2025-06-18", "2025-06-18"), ("2025-11-25", "2025-11-25"), ("1999-01-01", "2025-11-25")],
)
async def test_version_negotiation(asked: str, answer: str) -> None:
    server = make_server()
    ctx = server.open_session("t1")
    init = await initialize(server, ctx, asked)
    assert init.result is not None and init.result["protocolVersion"] == answer
    session = server.sessions.lookup(ctx.session_id, "t1")
    assert session is not None and session.protocol_version == answer


async def test_lifecycle_before_initialize() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    assert (await call(server, ctx, 1, "ping")).result == {}
    for method in ("tools/list", "tools/call", "resources/list"):
        response = await call(server, ctx, 2, method)
        assert error_code(response) == INVALID_REQUEST
        assert "before initialize" in response.error.message  # type: ignore[union-attr]
    assert await server.handle(Notification("notifications/initialized"), ctx) is None
    await initialize(server, ctx)
    assert (await call(server, ctx, 3, "tools/list")).result is not None
    assert (await call(server, ctx, 4, "ping")).result == {}
    again = await initialize(server, ctx)
    assert error_code(again) == INVALID_REQUEST


async def test_bad_initialize_params() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    response = await call(server, ctx, 1, "initialize", capabilities={})
    assert error_code(response) == INVALID_PARAMS
    # The session is still uninitialised.
    assert error_code(await call(server, ctx, 2, "tools/list")) == INVALID_REQUEST


async def test_unknown_method() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    await initialize(server, ctx)
    response = await call(server, ctx, 1, "prompts/list")
    assert error_code(response) == METHOD_NOT_FOUND
    assert "prompts/list" in response.error.message  # type: ignore[union-attr]


async def test_tools_call_errors() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    await initialize(server, ctx)
    unknown = await call(server, ctx, 1, "tools/call", name="nope", arguments={})
    assert error_code(unknown) == INVALID_PARAMS
    assert unknown.error is not None and unknown.error.message == "Unknown tool: nope"
    assert error_code(await call(server, ctx, 2, "tools/call", arguments={})) == INVALID_PARAMS
    assert error_code(await call(server, ctx, 3, "tools/call", name="add", arguments=[1])) == INVALID_PARAMS
    bad = await call(server, ctx, 4, "tools/call", name="add", arguments={"a": "x"})
    assert bad.result is not None and bad.result["isError"] is True
    assert "'a'" in bad.result["content"][0]["text"]
    missing = await call(server, ctx, 5, "tools/call", name="add")
    assert (
        missing.result is not None and "missing required argument 'a'" in missing.result["content"][0]["text"]
    )
    none_args = await call(server, ctx, 6, "tools/call", name="add", arguments=None)
    assert none_args.result is not None and none_args.result["isError"] is True


async def test_internal_error_hides_details(monkeypatch: pytest.MonkeyPatch) -> None:
    server = make_server()
    ctx = server.open_session("t1")
    await initialize(server, ctx)

    def explode() -> dict[str, Any]:
        raise RuntimeError("db password hunter2")

    monkeypatch.setattr(server.tools, "list_tools", explode)
    response = await call(server, ctx, 1, "tools/list")
    assert error_code(response) == INTERNAL_ERROR
    assert response.error is not None and "hunter2" not in response.error.message


async def test_unknown_expired_and_foreign_sessions() -> None:
    clock = FakeClock()
    server = make_server(clock)
    ctx = server.open_session("t1")
    await initialize(server, ctx)
    foreign = SessionContext(tenant_id="t2", session_id=ctx.session_id)
    assert error_code(await call(server, foreign, 1, "ping")) == INVALID_REQUEST
    assert error_code(await call(server, SessionContext("t1", "made-up"), 2, "ping")) == INVALID_REQUEST
    clock.t += 59
    assert (await call(server, ctx, 3, "ping")).result == {}  # a request keeps the session alive
    clock.t += 59
    assert (await call(server, ctx, 4, "ping")).result == {}
    clock.t += 60
    assert error_code(await call(server, ctx, 5, "ping")) == INVALID_REQUEST


async def test_notifications_and_responses_get_no_reply() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    cancelled = Notification("notifications/cancelled", {"requestId": 1, "reason": "x"})
    assert await server.handle(cancelled, ctx) is None
    assert await server.handle(Notification("notifications/whatever"), ctx) is None
    assert await server.handle(Response(id=1, result={}), ctx) is None
    assert await server.handle(Notification("notifications/initialized"), SessionContext("t2", "x")) is None


async def test_handle_raw() -> None:
    server = make_server()
    ctx = server.open_session("t1")
    out = await server.handle_raw(b"{oops", ctx)
    assert out is not None and json.loads(out)["error"]["code"] == PARSE_ERROR
    out = await server.handle_raw(b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', ctx)
    assert out is not None and json.loads(out) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": INVALID_REQUEST, "message": json.loads(out)["error"]["message"]},
    }
    out = await server.handle_raw('{"jsonrpc":"2.0","id":7,"method":"ping"}', ctx)
    assert out is not None and json.loads(out) == {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert await server.handle_raw('{"jsonrpc":"2.0","method":"notifications/initialized"}', ctx) is None
