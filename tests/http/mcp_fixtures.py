"""A real HTTP server (hypercorn) with the MCP endpoints mounted over test tools.

Tools: `add` (instant), `whoami` (the tenant), `slow` (waits for the test to release
it, reporting progress; records whether it was cancelled).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from quart_trio import QuartTrio

from deneva.config import Bind, Config
from deneva.db import Database
from deneva.http.mcp_ws import McpEndpoints
from deneva.http.server import HttpServer
from deneva.mcp.tools import Tool, ToolContext, ToolRegistry
from deneva.tenants import add_tenant, create_key


@attrs.define
class Slow:
    started: trio.Event = attrs.field(factory=trio.Event)
    release: trio.Event = attrs.field(factory=trio.Event)
    cancelled: trio.Event = attrs.field(factory=trio.Event)


class NowClock:
    """A settable clock for session expiry."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def now(self) -> float:
        return self.t


def test_tools(slow: Slow) -> ToolRegistry:
    async def add(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"sum": args["a"] + args["b"]}

    async def whoami(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"tenant": ctx.tenant_id}

    async def wait(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        slow.started.set()
        try:
            if ctx.progress is not None:
                await ctx.progress(1, 2, "halfway")
            await slow.release.wait()
            if ctx.progress is not None:
                await ctx.progress(2, 2, None)
            return {"done": True}
        except trio.Cancelled:
            slow.cancelled.set()
            raise

    obj: dict[str, Any] = {"type": "object", "additionalProperties": False}
    return ToolRegistry(
        [
            Tool(
                "add",
                "Add two integers.",
                {
                    **obj,
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
                {"type": "object", "properties": {"sum": {"type": "integer"}}},
                add,
            ),
            Tool("whoami", "The caller's tenant.", {**obj, "properties": {}}, None, whoami),
            Tool("slow", "Waits until released.", {**obj, "properties": {}}, None, wait, waits=True),
        ]
    )


@attrs.frozen
class McpTestServer:
    url: str
    ws_url: str
    key_a: str
    key_b: str
    tenant_a: str
    tenant_b: str
    slow: Slow
    clock: NowClock
    endpoints: McpEndpoints
    drain: trio.Event


@asynccontextmanager
async def mcp_test_server(db: Database, config: Config | None = None) -> AsyncIterator[McpTestServer]:
    async def provision(conn: Any) -> tuple[str, str, str, str]:
        a = await add_tenant(conn, "acme")
        b = await add_tenant(conn, "globex")
        ka = await create_key(conn, "acme")
        kb = await create_key(conn, "globex")
        return str(a.id), str(b.id), ka.plaintext, kb.plaintext

    tenant_a, tenant_b, key_a, key_b = await db.run(provision)
    slow = Slow()
    clock = NowClock()
    drain = trio.Event()
    config = config or Config(http_bind=Bind("127.0.0.1", 0))
    endpoints = McpEndpoints.build(db, test_tools(slow), config, clock, drain)  # type: ignore[arg-type]
    app = QuartTrio("mcp-test")
    endpoints.mount(app)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(HttpServer(app, Bind("127.0.0.1", 0), drain, 2.0).run)
        base = binds[0].replace("http://", "")
        yield McpTestServer(
            f"http://{base}/mcp",
            f"ws://{base}/mcp/ws",
            key_a,
            key_b,
            tenant_a,
            tenant_b,
            slow,
            clock,
            endpoints,
            drain,
        )
        drain.set()
        nursery.cancel_scope.cancel()
