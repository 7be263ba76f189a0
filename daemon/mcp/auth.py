"""API-key authentication for the MCP endpoints, with a cache that revocation empties.

Looking a key up costs a database round trip on every MCP request. `KeyCache` keeps
the keys it has seen valid, and forgets them the moment one is revoked: `deneva key
revoke` sends a NOTIFY on `deneva_api_keys` (with the key's prefix) in its
transaction, and every daemon's `KeyCache` actor LISTENs. The cache is only trusted
while that LISTEN connection is up: until the actor has connected, and from the
moment the connection drops until it is back (and the cache emptied), every request
is looked up in the database. A lookup that races a revocation is not cached (a
generation counter changes with every notification).
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from deneva import tenants
from deneva.db import LISTEN_LOST, Database

log = logging.getLogger("deneva.mcp.auth")

MAX_ENTRIES = 10_000


class KeyCache:
    """An actor (`run`) and the `authenticate(key) -> tenant id | None` the endpoints use."""

    name = "key-cache"

    def __init__(self, db: Database, max_entries: int = MAX_ENTRIES) -> None:
        self.db = db
        self.max_entries = max_entries
        self._entries: dict[str, tuple[str, str]] = {}  # key hash -> (tenant id, prefix)
        self._live = False
        self._generation = 0
        self._changed = trio.Event()
        self.lookups = 0

    @property
    def live(self) -> bool:
        return self._live

    def __len__(self) -> int:
        return len(self._entries)

    async def authenticate(self, key: str) -> str | None:
        prefix = tenants.parse_key(key)
        if prefix is None:
            return None
        digest = tenants.hash_key(key.strip()).hex()
        if self._live:
            entry = self._entries.get(digest)
            if entry is not None:
                return entry[0]
        generation = self._generation
        self.lookups += 1
        tenant = await self.db.run(lambda conn: tenants.authenticate(conn, key))
        if tenant is None:
            return None
        if self._live and generation == self._generation:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (str(tenant), prefix)
        return str(tenant)

    def next_change(self) -> trio.Event:
        """Set when the next notification (revocation, reconnect, loss) has been applied."""
        return self._changed

    async def wait_until(self, live: bool) -> None:
        while self._live != live:
            await self._changed.wait()

    def _bump(self) -> None:
        self._generation += 1
        self._changed.set()
        self._changed = trio.Event()

    def _forget(self, prefix: str) -> None:
        self._bump()
        for digest in [d for d, (_, p) in self._entries.items() if p == prefix]:
            del self._entries[digest]

    def _reset(self, live: bool) -> None:
        self._entries.clear()
        self._live = live
        self._bump()

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with self.db.listen(tenants.KEYS_CHANNEL, report_loss=True) as notes:
                task_status.started()
                async for _channel, payload in notes:
                    if payload == "":  # (re)connected: whatever was missed is forgotten
                        self._reset(live=True)
                    elif payload == LISTEN_LOST:
                        self._reset(live=False)
                        log.warning("API-key cache off until the LISTEN connection is back")
                    else:
                        self._forget(payload)
        finally:
            self._reset(live=False)
