"""A real HTTP server (hypercorn on loopback) with deneva's MCP authorization mounted: the
protected resource metadata, the built-in authorization server, and `/mcp`, `/mcp/ws`
over three test tools (two needing `reports:read`, one `reports:refresh`), on a real
database, tokens checked through a running `KeyCache`, and one settable clock for the
authorization server and the cache (codes, connect codes and tokens expire by it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from quart_trio import QuartTrio

from deneva.config import Bind, Config
from deneva.db import Database
from deneva.http.mcp_ws import McpEndpoints, host_policy
from deneva.http.oauth import oauth_blueprint
from deneva.http.server import HttpServer
from deneva.mcp.auth import KeyCache
from deneva.mcp.tools import Tool, ToolContext, ToolRegistry
from deneva.oauth.resource import ExternalTokens, ProtectedResource
from deneva.oauth.server import AuthorizationServer, ResolveDocument
from deneva.secrets import Secret
from deneva.tenants import add_tenant, create_key
from tests.http.mcp_fixtures import NowClock

ADMIN_TOKEN = "admin-token-for-tests-0123456789abcdef"


def oauth_tools() -> ToolRegistry:
    async def whoami(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"tenant": ctx.tenant_id}

    async def refresh(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"refreshed": ctx.tenant_id}

    obj: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    return ToolRegistry(
        [
            Tool("whoami", "The caller's tenant.", obj, None, whoami, hints={"readOnlyHint": True}),
            Tool("refresher", "Needs reports:refresh.", obj, None, refresh, scope="reports:refresh"),
        ]
    )


@attrs.frozen
class OAuthTestServer:
    base: str  # http://127.0.0.1:PORT
    tenant_a: str
    tenant_b: str
    key_a: str
    clock: NowClock
    keys: KeyCache
    server: AuthorizationServer
    db: Database

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/mcp/ws"


@asynccontextmanager
async def oauth_test_server(
    db: Database, resolve_document: ResolveDocument | None = None, external: ExternalTokens | None = None
) -> AsyncIterator[OAuthTestServer]:
    """With `external`, that issuer's tokens instead of the built-in authorization server."""

    async def provision(conn: Any) -> tuple[str, str, str]:
        a = await add_tenant(conn, "acme")
        b = await add_tenant(conn, "globex")
        key = await create_key(conn, "acme")
        return str(a.id), str(b.id), key.plaintext

    tenant_a, tenant_b, key_a = await db.transaction(provision)
    clock = NowClock()
    clock.t = 1_800_000_000.0
    drain = trio.Event()
    config = Config(http_bind=Bind("127.0.0.1", 0))
    keys = KeyCache(db, now=clock.now)
    server = AuthorizationServer(db, clock, resolve_document=resolve_document)  # type: ignore[arg-type]
    tools = oauth_tools()
    protected = ProtectedResource(
        keys.authenticate,
        None if external is not None else keys.authenticate_access_token,
        external=external,
        scopes=tuple(tools.scopes),
    )
    endpoints = McpEndpoints.build(db, tools, config, clock, drain, keys.authenticate, protected)  # type: ignore[arg-type]
    app = QuartTrio("oauth-test")
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.register_blueprint(
        oauth_blueprint(
            protected,
            None if external is not None else server,
            host_policy(config),
            Secret("DENEVA_ADMIN_TOKEN", ADMIN_TOKEN),
        )
    )
    endpoints.mount(app)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(keys.run)
        with trio.fail_after(10):
            await keys.wait_until(live=True)
        binds = await nursery.start(HttpServer(app, Bind("127.0.0.1", 0), drain, 2.0).run)
        yield OAuthTestServer(binds[0], tenant_a, tenant_b, key_a, clock, keys, server, db)
        drain.set()
        nursery.cancel_scope.cancel()
