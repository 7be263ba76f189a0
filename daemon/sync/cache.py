"""The metric cache: one row per (tenant, platform, account, report type, date range).

Reads never block on staleness: a stale or expired row is returned as a hit, marked
`stale`, while the eager refresh brings it up to date. A miss is fetched once, however
many callers and processes miss the same key at the same moment: the first to claim
the key in `metric_cache_fetches` fetches (the MCP tools: joins or enqueues the key's
`refresh-tenant-report` run and waits for it, `read_or_refresh`), the others wait for
its row. All of it runs
in tenant transactions, so row-level security scopes every read and write.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
import trio

from deneva.backoff import Backoff
from deneva.clock import Clock
from deneva.db import Connection, Database
from deneva.errors import DenevaError
from deneva.sql import query
from deneva.sync.cadence import refresh_due


class CacheWaitTimeout(DenevaError):
    """Another process was fetching this key and did not finish in time."""


@attrs.frozen
class CacheKey:
    tenant_id: uuid.UUID
    platform: str
    account_id: str
    report_type: str
    date_range: str

    @property
    def text(self) -> str:
        return f"{self.platform}|{self.account_id}|{self.report_type}|{self.date_range}"


@attrs.frozen
class CacheResult:
    data: Any
    cache: Literal["hit", "miss"]
    fetched_at: float
    stale: bool
    last_failure_code: str | None = None

    def envelope(self) -> dict[str, Any]:
        """The shape tools return (SPEC §9): {data, cache, fetchedAt, stale?, lastFailureCode?}."""
        body: dict[str, Any] = {
            "data": self.data,
            "cache": self.cache,
            "fetchedAt": datetime.fromtimestamp(self.fetched_at, UTC).isoformat(),
        }
        if self.stale:
            body["stale"] = True
        if self.last_failure_code:
            body["lastFailureCode"] = self.last_failure_code
        return body


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


_READ = query("sync_cache_read")
WRITE_SQL = query("sync_cache_write")
_CLAIM = query("sync_cache_claim_fetch")
_RELEASE = query("sync_cache_release_fetch")
_MARK_STALE = query("sync_cache_mark_stale")
_CLAIM_POLL = Backoff(base_s=0.02, factor=2.0, max_s=0.5, jitter=0.25)


def write_args(key: CacheKey, payload: Any, fetched_at: float, ttl_s: float) -> tuple[Any, ...]:
    """Arguments of the cache upsert; the row's refresh falls at 80-90 % of its TTL."""
    return (
        *_key_args(key),
        payload,
        _ts(fetched_at),
        _ts(fetched_at + ttl_s),
        _ts(refresh_due(fetched_at, ttl_s)),
    )


def _key_args(key: CacheKey) -> tuple[Any, ...]:
    return (key.tenant_id, key.platform, key.account_id, key.report_type, key.date_range)


def hit_from_row(row: Any, now: float, data: Any = None) -> CacheResult:
    """A cache row (payload, fetched_at, expires_at, is_stale, and its credential's
    healthy, last_error_code) as a hit: stale once expired or marked so. `data`, when
    given, stands for the payload (the MCP tools pass its JSON text, spliced as is)."""
    stale = bool(row["is_stale"]) or row["expires_at"].timestamp() <= now
    failure = row["last_error_code"] if row["healthy"] is False else None
    payload = row["payload"] if data is None else data
    return CacheResult(payload, "hit", row["fetched_at"].timestamp(), stale, failure)


async def _read(conn: Connection, key: CacheKey, now: float) -> CacheResult | None:
    row = await conn.fetchrow(_READ, *_key_args(key))
    return None if row is None else hit_from_row(row, now)


async def read(db: Database, key: CacheKey, now: float) -> CacheResult | None:
    return await db.tenant_transaction(str(key.tenant_id), lambda conn: _read(conn, key, now))


async def write(db: Database, key: CacheKey, payload: Any, fetched_at: float, ttl_s: float) -> None:
    async def upsert(conn: Connection) -> None:
        await conn.execute(WRITE_SQL, *write_args(key, payload, fetched_at, ttl_s))

    await db.tenant_transaction(str(key.tenant_id), upsert)


async def read_or_fetch(
    db: Database,
    key: CacheKey,
    fetch: Callable[[], Awaitable[Any]],
    *,
    clock: Clock,
    ttl_s: float,
    owner: str,
    claim_s: float = 120.0,
    wait_s: float = 60.0,
) -> CacheResult:
    """The cached report, or fetch it and store it: exactly once across callers and processes."""

    async def fetch_and_store() -> None:
        payload = await fetch()
        await write(db, key, payload, clock.now(), ttl_s)

    return await read_or_refresh(
        db, key, fetch_and_store, clock=clock, owner=owner, claim_s=claim_s, wait_s=wait_s
    )


async def read_or_refresh(
    db: Database,
    key: CacheKey,
    refresh: Callable[[], Awaitable[None]],
    *,
    clock: Clock,
    owner: str,
    claim_s: float = 120.0,
    wait_s: float = 60.0,
) -> CacheResult:
    """The cached report, or have `refresh` store it (the worker's run, joined or enqueued,
    and waited for) and read it back: one refresh across callers and processes, the others
    wait for its row. `refresh` raises when the run did not store the row."""
    tenant = str(key.tenant_id)
    cached = await read(db, key, clock.now())
    if cached is not None:
        return cached
    polls = 0
    claimed = False
    with trio.move_on_after(wait_s):
        while not claimed:
            now = clock.now()

            async def claim(conn: Connection, now: float = now) -> bool:
                got = await conn.fetchval(
                    _CLAIM, key.tenant_id, key.text, owner, _ts(now + claim_s), _ts(now)
                )
                return got is not None

            claimed = await db.tenant_transaction(tenant, claim)
            if claimed:
                break
            polls += 1
            await trio.sleep(_CLAIM_POLL.delay(polls))  # another refresh is under way: its row will appear
            cached = await read(db, key, clock.now())
            if cached is not None:
                return attrs.evolve(cached, cache="miss")
    if not claimed:
        raise CacheWaitTimeout(
            f"{key.platform} {key.report_type}: another fetch of this report did not finish in {wait_s:.0f} s"
        )
    # The claim's owner: `refresh` keeps its own time limit (the tool's, the adapters').
    try:
        await refresh()
    finally:
        with trio.CancelScope(shield=True):
            await db.tenant_transaction(tenant, lambda conn: conn.execute(_RELEASE, key.tenant_id, key.text))
    stored = await read(db, key, clock.now())
    if stored is None:
        raise CacheWaitTimeout(f"{key.platform} {key.report_type}: the refresh stored no report")
    return attrs.evolve(stored, cache="miss")


async def mark_stale(conn: Connection, tenant_id: uuid.UUID, platform: str, account_id: str) -> int:
    """Mark every cached report of one account stale (sync exhaustion); returns the count."""
    result: str = await conn.execute(_MARK_STALE, tenant_id, platform, account_id)
    return int(result.split()[-1])
