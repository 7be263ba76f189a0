"""`make run`'s demo: the sandbox ad platforms in-process, a `demo` tenant connected
to a sandbox account on each platform, its API key in STATE_DIR/demo-api-key, and the
cache warmed at once (the fan-out functions are invoked at start)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import httpx
import trio

from deneva import tenants
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Connection, Database
from deneva.engine.engine import Engine
from deneva.sandbox.server import SandboxServer
from deneva.sandbox.state import SandboxConfig
from deneva.sync.cadence import CADENCES

log = logging.getLogger("deneva.demo")

DEMO_TENANT = "demo"
DEMO_ACCOUNTS = {"google": "1234567890", "meta": "1001", "tiktok": "7000000000000000001"}
DEMO_TOKENS = {
    "google": "demo-google-refresh-token",
    "meta": "demo-meta-token",
    "tiktok": "demo-tiktok-token",
}


class DemoSandbox:
    """The sandbox server as an actor, with the demo tokens registered."""

    name = "sandbox"

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        server = SandboxServer(SandboxConfig())
        async with trio.open_nursery() as nursery:
            base_url: str = await nursery.start(server.run)
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as control:
                for platform, token in DEMO_TOKENS.items():
                    kind = "refresh_token" if platform == "google" else "access_token"
                    response = await control.post(
                        "/_control/tokens", json={"platform": platform, kind: token}
                    )
                    response.raise_for_status()
            task_status.started(base_url)


async def provision_demo(db: Database, keys: Keyring, state_dir: Path) -> Path:
    """Create (once) the demo tenant, its credentials and API key; return the key's file."""
    key_file = state_dir / "demo-api-key"

    async def provision(conn: Connection) -> str | None:
        if await conn.fetchval("SELECT 1 FROM tenants WHERE name = $1", DEMO_TENANT) is None:
            await tenants.add_tenant(conn, DEMO_TENANT)
        for platform, account in DEMO_ACCOUNTS.items():
            token = DEMO_TOKENS[platform]
            plain = PlainTokens(token, None) if platform == "google" else PlainTokens(None, token)
            await store_credential(conn, keys, DEMO_TENANT, platform, account, plain)
        existing = key_file.read_text().strip() if key_file.exists() else ""
        if existing and await tenants.authenticate(conn, existing) is not None:
            return None
        return (await tenants.create_key(conn, DEMO_TENANT, "demo")).plaintext

    new_key = await db.transaction(provision)
    if new_key is not None:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key + "\n")
    return key_file


async def warm_cache(engine: Engine) -> int:
    """Run every fan-out function now rather than at its next tick."""
    started = 0
    for cadence in CADENCES:
        await engine.invoke(f"sync-{cadence.platform}-{cadence.report_type}")
        started += 1
    log.info("demo cache warming", extra={"fan_out_runs": started})
    return started
