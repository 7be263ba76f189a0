"""The report tools' batched cache read (deneva.mcp.report_reads) against the real database:
a batch that Postgres rejects because of one call is sent again one call at a time, so
the other calls in it, other tenants' included, still get their rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio
import trio.testing

from deneva import tenants
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Connection, Database
from deneva.errors import QueryError
from deneva.mcp.report_reads import ReportReads
from deneva.sync.cache import CacheKey, write

EPOCH = 1_767_225_600.0
ACCOUNT = "1234567890"


async def _tenant_with_report(db: Database, name: str) -> uuid.UUID:
    """A tenant with Google account ACCOUNT and its account_health row `{"owner": name}`."""
    tenant = (await db.transaction(lambda c: tenants.add_tenant(c, name))).id

    async def connect(conn: Connection) -> None:
        await store_credential(conn, Keyring(bytes(32)), name, "google", ACCOUNT, PlainTokens("r", "t"))

    await db.transaction(connect)
    key = CacheKey(tenant, "google", ACCOUNT, "account_health", "last_7_days")
    await write(db, key, {"owner": name}, EPOCH, 3600)
    return tenant


@asynccontextmanager
async def credentials_locked(database_url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Another session holds platform_credentials locked, so the batches under way block
    on it (and the calls made meanwhile queue up) until the yielded `release` is awaited."""
    other = await Database.open(database_url, min_size=1, max_size=1)
    token = trio.lowlevel.current_trio_token()
    locked = trio.Event()
    unlocked = trio.Event()
    release = asyncio.Event()

    async def hold(conn: Connection) -> None:
        await conn.execute("LOCK TABLE platform_credentials IN ACCESS EXCLUSIVE MODE")
        token.run_sync_soon(locked.set)
        await release.wait()

    async def holder() -> None:
        try:
            await other.transaction(hold)
        finally:
            unlocked.set()

    async def unlock() -> None:
        other.bridge.loop.call_soon_threadsafe(release.set)
        await unlocked.wait()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
            await locked.wait()
            yield unlock
            await unlock()
    finally:
        await other.close()


async def test_a_batch_postgres_rejects_is_sent_again_call_by_call_so_the_other_calls_get_their_rows(
    db: Database, database_url: str
) -> None:
    # The tools refuse such an account id before it gets here (test_report_tools); here it
    # goes straight to ReportReads, so that Postgres really rejects the batched statement
    # (a NUL cannot be text) and the fallback is what saves the other calls.
    acme = await _tenant_with_report(db, "acme")
    globex = await _tenant_with_report(db, "globex")
    reads = ReportReads(db, 10, max_in_flight=1)
    got: dict[str, list[tuple[str, str | None]] | str] = {}

    async def read(name: str, tenant: uuid.UUID, account: str | None) -> None:
        try:
            rows = await reads.read(tenant, "google", "account_health", "last_7_days", account)
        except QueryError as exc:
            got[name] = f"error: {exc}"
        else:
            got[name] = [(r["account_id"], r["payload"]) for r in rows]

    with trio.fail_after(60):  # a guard: a stranded call would hang the test
        async with credentials_locked(database_url) as unlock, trio.open_nursery() as nursery:
            nursery.start_soon(read, "first", globex, None)
            await trio.testing.wait_all_tasks_blocked()  # its batch takes the one slot, blocked
            nursery.start_soon(read, "bad", acme, "12\x0034")
            for n in range(5):
                nursery.start_soon(read, f"globex-{n}", globex, ACCOUNT if n % 2 else None)
            nursery.start_soon(read, "acme", acme, ACCOUNT)
            await trio.testing.wait_all_tasks_blocked()  # the others queue behind it
            assert reads.batches == 1 and got == {}
            await unlock()

    globex_row = [(ACCOUNT, '{"owner": "globex"}')]
    assert got.pop("bad") == 'error: invalid byte sequence for encoding "UTF8": 0x00 (SQLSTATE 22021)'
    assert got == {
        "first": globex_row,
        **{f"globex-{n}": globex_row for n in range(5)},
        "acme": [(ACCOUNT, '{"owner": "acme"}')],
    }
    # The seven queued calls went out as one statement, which failed, then as seven.
    assert reads.fallbacks == 1 and reads.batches == 1 + 1 + 7
