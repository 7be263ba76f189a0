"""The peer of `deneva bench mcp`: the official MCP Python SDK's server serving the same tool.

    DENEVA_BENCH_DSN=postgresql://... python -m deneva.bench.mcp_peer --port PORT [--pool-size 20]

`mcp`'s `MCPServer` (the SDK's high-level server) under uvicorn, one process, in the
SDK's stateful Streamable HTTP mode with JSON responses (`json_response=True`), at
`/mcp` on 127.0.0.1. One tool, `get_account_health` (platform, dateRange, optional
accountId), reads the same metric_cache row as deneva's tool with deneva's own account
resolution (`deneva.mcp.report_tools._resolve`: the same statement, one round trip) in a
transaction scoped to the caller's tenant as deneva's tools do (role `deneva_app`,
`deneva.tenant_id`, so row-level security applies), from an asyncpg pool of the size
the caller gives (deneva's own), and returns the same envelope `{data, cache: "hit",
fetchedAt}` as structuredContent and as JSON text. It only serves hits: a miss is a
tool error (the benchmark's row is always there). Callers authenticate with a deneva
API key (`Authorization: Bearer dnv_...`) through the SDK's own bearer-token
machinery (`TokenVerifier`), checked against the api_keys table as deneva checks it and
then remembered by hash, as deneva's key cache does.

The SDK's log level is WARNING and uvicorn's access log is off, as deneva's is. uvicorn
runs with its defaults: httptools and uvloop when they are installed, else h11 and
asyncio (the bench extra installs plain `uvicorn`: h11, as deneva's hypercorn).
`mcp` and `uvicorn` come with the bench extra (`pip install 'deneva[bench]'`); they are
imported inside the functions, so this module imports without them.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import asyncpg

from deneva.db import SYSTEM_ROLE, init_connection
from deneva.tenants import hash_key, parse_key

DSN_ENV = "DENEVA_BENCH_DSN"
PACKAGES = ("mcp", "uvicorn")
REPORT_TYPE = "account_health"
Platform = Literal["google", "meta", "tiktok"]
DateRange = Literal["last_7_days", "last_30_days", "last_90_days"]

_AUTH_SQL = "SELECT tenant_id, key_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL"


def missing_package() -> str | None:
    """The package the peer needs that is not installed, or None."""
    return next((p for p in PACKAGES if importlib.util.find_spec(p) is None), None)


def versions() -> dict[str, str]:
    """Package versions, and what uvicorn's "auto" picks: httptools/uvloop when installed."""
    out = {}
    for package in PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = "missing"
    out["http"] = "httptools" if importlib.util.find_spec("httptools") else "h11"
    out["loop"] = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return out


async def _open_pool(dsn: str, size: int) -> asyncpg.Pool:
    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        await conn.execute(f'SET ROLE "{SYSTEM_ROLE}"')

    # Deneva's Database.open: min 2, max `size`.
    return await asyncpg.create_pool(dsn, min_size=min(2, size), max_size=size, init=init)


def build_app(dsn: str, pool_size: int, port: int) -> Any:
    """The SDK's Starlette app: MCPServer with one tool, bearer auth on deneva's API keys."""
    from mcp.server.auth.middleware.auth_context import get_access_token
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from deneva.mcp.report_reads import BATCH_SQL
    from deneva.sync.cache import hit_from_row

    state: dict[str, asyncpg.Pool] = {}

    class ApiKeyVerifier:
        """deneva's `tenants.authenticate`: the key's prefix finds the row, its SHA-256 is compared."""

        def __init__(self) -> None:
            # Verified keys by hash, as deneva's KeyCache keeps them (the bench never revokes).
            self.verified: dict[bytes, str] = {}

        async def verify_token(self, token: str) -> AccessToken | None:
            digest = hash_key(token.strip())
            tenant = self.verified.get(digest)
            if tenant is None:
                prefix = parse_key(token)
                if prefix is None:
                    return None
                row = await state["pool"].fetchrow(_AUTH_SQL, prefix)
                if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
                    return None
                tenant = self.verified[digest] = str(row["tenant_id"])
            return AccessToken(token=token, client_id=tenant, scopes=[])

    @contextlib.asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[dict[str, Any]]:
        state["pool"] = await _open_pool(dsn, pool_size)
        try:
            yield {}
        finally:
            await state["pool"].close()

    base = f"http://127.0.0.1:{port}"
    server: Any = MCPServer(
        "deneva-bench-peer",
        token_verifier=ApiKeyVerifier(),
        auth=AuthSettings.model_validate({"issuer_url": base, "resource_server_url": f"{base}/mcp"}),
        lifespan=lifespan,
        log_level="WARNING",
    )

    @server.tool(description="Account health: spend, conversions, pacing and flags, from the cache.")
    async def get_account_health(
        platform: Platform, dateRange: DateRange, accountId: str | None = None
    ) -> dict[str, Any]:
        access = get_access_token()
        if access is None:
            raise ToolError("not authenticated")
        # deneva's statement (deneva_tenant_reports switches to the tenant role and
        # tenant, so row-level security applies), one round trip for this one call.
        rows = await state["pool"].fetch(
            BATCH_SQL, [uuid.UUID(access.client_id)], [platform], [REPORT_TYPE], [dateRange], [accountId], 2
        )
        if len(rows) != 1 or rows[0]["payload"] is None:
            raise ToolError(f"{platform} {REPORT_TYPE} {dateRange} is not cached (the peer never fetches)")
        # The SDK serialises objects, so the cached JSON text is parsed here.
        return hit_from_row(rows[0], time.time(), json.loads(rows[0]["payload"])).envelope()

    return server.streamable_http_app(json_response=True, host="127.0.0.1")


def serve(dsn: str, port: int, pool_size: int) -> None:
    import uvicorn

    app = build_app(dsn, pool_size, port)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,  # as deneva's hypercorn
    )
    uvicorn.Server(config).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deneva.bench.mcp_peer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=20)
    args = parser.parse_args(argv)
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        print(f"mcp_peer: error: {DSN_ENV} is not set", file=sys.stderr)
        return 2
    missing = missing_package()
    if missing is not None:
        print(f"mcp_peer: error: the package {missing!r} is not installed", file=sys.stderr)
        return 2
    logging.getLogger("mcp").setLevel(logging.WARNING)
    serve(dsn, args.port, args.pool_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
