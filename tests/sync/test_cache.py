"""The metric cache: hits never block on staleness, a miss is fetched once across
processes, a failed fetch lets the next caller try, tenants never see each other's rows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import trio
import trio.testing

from deneva import tenants
from deneva.clock import TrioClock
from deneva.db import Connection, Database
from deneva.sync.cache import CacheKey, mark_stale, read, read_or_fetch, write
from deneva.sync.cadence import CADENCES, cadence_for, refresh_due

EPOCH = 1_767_225_600.0


async def _tenant(db: Database, name: str) -> uuid.UUID:
    return (await db.transaction(lambda c: tenants.add_tenant(c, name))).id


def _key(tenant_id: uuid.UUID, report: str = "account_health") -> CacheKey:
    return CacheKey(tenant_id, "google", "1234567890", report, "last_7_days")


async def test_miss_then_hit_then_stale_after_the_ttl(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    key = _key(await _tenant(db, "acme"))
    calls = []

    async def fetch() -> dict[str, int]:
        calls.append(1)
        return {"spend": 42}

    first = await read_or_fetch(db, key, fetch, clock=clock, ttl_s=3600, owner="p1")
    assert first.cache == "miss" and first.data == {"spend": 42} and not first.stale
    second = await read_or_fetch(db, key, fetch, clock=clock, ttl_s=3600, owner="p1")
    assert second.cache == "hit" and second.fetched_at == first.fetched_at and len(calls) == 1
    await trio.sleep(3601)
    expired = await read_or_fetch(db, key, fetch, clock=clock, ttl_s=3600, owner="p1")
    assert expired.cache == "hit" and expired.stale and len(calls) == 1  # reads never block
    envelope = expired.envelope()
    assert (
        envelope["stale"] is True
        and envelope["cache"] == "hit"
        and envelope["fetchedAt"].startswith("2026-01-01")
    )


async def test_concurrent_misses_in_two_processes_fetch_once(
    db: Database, database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    key = _key(await _tenant(db, "acme"))
    other_process = await Database.open(database_url)
    calls = []
    results = []

    async def slow_fetch() -> dict[str, str]:
        calls.append(1)
        await trio.sleep(2)  # a platform call
        return {"rows": "fresh"}

    async def caller(pool: Database, owner: str) -> None:
        results.append(await read_or_fetch(pool, key, slow_fetch, clock=clock, ttl_s=3600, owner=owner))

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(caller, db if i % 2 else other_process, f"p{i % 2}")
    await other_process.close()
    assert len(calls) == 1
    assert [r.data for r in results] == [{"rows": "fresh"}] * 10
    assert sorted(r.cache for r in results) == ["miss"] * 10


async def test_a_failed_fetch_lets_the_next_caller_fetch(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    clock = TrioClock(EPOCH - trio.current_time())
    key = _key(await _tenant(db, "acme"))

    async def broken() -> None:
        raise RuntimeError("platform down")

    async def working() -> dict[str, int]:
        return {"ok": 1}

    with pytest.raises(RuntimeError, match="platform down"):
        await read_or_fetch(db, key, broken, clock=clock, ttl_s=60, owner="p1")
    assert (await read_or_fetch(db, key, working, clock=clock, ttl_s=60, owner="p2")).data == {"ok": 1}


async def test_tenants_never_see_each_others_rows_and_stale_marking(db: Database) -> None:
    acme, globex = await _tenant(db, "acme"), await _tenant(db, "globex")
    await write(db, _key(acme), {"secret": "acme-data"}, EPOCH, 3600)
    assert await read(db, _key(globex), EPOCH) is None
    # A key naming acme's tenant, read in globex's transaction, still finds nothing (RLS).
    forged = CacheKey(acme, "google", "1234567890", "account_health", "last_7_days")
    rows = await db.tenant_transaction(str(globex), lambda c: c.fetch("SELECT * FROM metric_cache"))
    assert rows == []
    hit = await read(db, forged, EPOCH)
    assert hit is not None and hit.data == {"secret": "acme-data"} and not hit.stale
    marked = await db.transaction(lambda c: mark_stale(c, acme, "google", "1234567890"))
    assert marked == 1
    again = await read(db, _key(acme), EPOCH)
    assert again is not None and again.stale


def test_cadences_cover_the_seed_and_refresh_inside_the_headroom() -> None:
    assert cadence_for("google", "auction_insights") is not None
    assert cadence_for("google", "auction_insights").ttl_s == 4 * 3600  # type: ignore[union-attr]
    assert cadence_for("meta", "search_term_waste") is None  # Meta has no search terms
    assert len(CADENCES) == 13
    for _ in range(200):
        due = refresh_due(0.0, 3600.0)
        assert 0.8 * 3600 <= due <= 0.9 * 3600


async def _two_tenants_on_one_account(db: Database) -> dict[str, uuid.UUID]:
    """acme and globex, each with Google account 1234567890 and its account_health row
    `{"owner": <name>}`: the same ids, so only row-level security tells them apart."""
    from deneva.credentials import Keyring, PlainTokens, store_credential

    ids = {}
    for name in ("acme", "globex"):
        ids[name] = await _tenant(db, name)

        async def connect(conn: Connection, tenant: str = name) -> None:
            await store_credential(
                conn, Keyring(bytes(32)), tenant, "google", "1234567890", PlainTokens("r", "t")
            )

        await db.transaction(connect)
        await write(db, _key(ids[name]), {"owner": name}, EPOCH, 3600)
    return ids


async def test_the_tool_read_sees_only_its_tenant_under_row_level_security(db: Database) -> None:
    # deneva_tenant_reports (migration 0004) has no tenant condition of its own: two
    # tenants with the same account id and report would both show if row-level security
    # did not apply inside it.
    from deneva.errors import QueryError
    from deneva.mcp.report_reads import BATCH_SQL

    ids = await _two_tenants_on_one_account(db)

    def read(tenant: uuid.UUID) -> tuple[Any, ...]:
        return (BATCH_SQL, [tenant], ["google"], ["account_health"], ["last_7_days"], [None], 10)

    for name in ("acme", "globex"):
        rows = await db.fetch(*read(ids[name]))
        assert [(r["account_id"], r["payload"]) for r in rows] == [("1234567890", f'{{"owner": "{name}"}}')]
    # The switch lasts only for that statement: the pooled connection is back as it was.
    state = await db.fetchrow("SELECT current_user AS who, current_setting('deneva.tenant_id', true) AS t")
    assert state is not None and state["who"] == "deneva_system" and not state["t"]
    # The tenant role itself may not call it (it would choose its own tenant).
    with pytest.raises(QueryError, match="permission denied"):
        await db.tenant_transaction(str(ids["acme"]), lambda c: c.fetch(*read(ids["globex"])))


async def test_batched_tool_reads_give_each_call_its_own_tenants_rows(db: Database) -> None:
    # Many concurrent calls from two tenants with the same account id and report go out
    # as a few deneva_tenant_reports statements; row-level security scopes each call's
    # query to its own tenant, so every caller gets its own row and only that.
    from deneva.mcp.report_reads import ReportReads

    ids = await _two_tenants_on_one_account(db)
    reads = ReportReads(db, 10, max_in_flight=2)
    got: dict[int, list[tuple[str, str | None]]] = {}

    async def one(n: int) -> None:
        name = ("acme", "globex")[n % 2]
        account = "1234567890" if n % 3 else None
        report = "account_health" if n % 5 else "campaign_performance"  # not cached
        rows = await reads.read(ids[name], "google", report, "last_7_days", account)
        got[n] = [(r["account_id"], r["payload"]) for r in rows]

    async with trio.open_nursery() as nursery:
        for n in range(60):
            nursery.start_soon(one, n)
    for n in range(60):
        name = ("acme", "globex")[n % 2]
        payload = f'{{"owner": "{name}"}}' if n % 5 else None
        assert got[n] == [("1234567890", payload)], n
    assert reads.batches < 60 / 4  # they did share statements
    # A platform the tenant has not connected: no rows, not another tenant's.
    assert await reads.read(ids["acme"], "meta", "account_health", "last_7_days", None) == []


async def test_a_cancelled_batch_runner_leaves_the_other_calls_answered(
    db: Database, database_url: str
) -> None:
    import asyncio

    from deneva.mcp.report_reads import ReportReads

    tenant = await _tenant(db, "acme")
    reads = ReportReads(db, 10, max_in_flight=1)
    answered: list[object] = []
    # Another session locks the table, so the first batch is surely under way (blocked)
    # when its runner is cancelled.
    other = await Database.open(database_url, min_size=1, max_size=1)
    token = trio.lowlevel.current_trio_token()
    locked = trio.Event()
    release = asyncio.Event()

    async def hold(conn: Connection) -> None:
        await conn.execute("LOCK TABLE platform_credentials IN ACCESS EXCLUSIVE MODE")
        token.run_sync_soon(locked.set)
        await release.wait()

    async def one() -> None:
        answered.append(await reads.read(tenant, "google", "account_health", "last_7_days", None))

    try:
        with trio.fail_after(60):  # a guard: a stranded call would hang the test
            async with trio.open_nursery() as nursery:
                nursery.start_soon(other.transaction, hold)
                await locked.wait()
                scope = trio.CancelScope()

                async def first() -> None:
                    with scope:
                        await reads.read(tenant, "google", "account_health", "last_7_days", None)
                    answered.append("cancelled" if scope.cancelled_caught else "answered")

                nursery.start_soon(first)
                await trio.testing.wait_all_tasks_blocked()  # `first` runs the batch, blocked on the lock
                for _ in range(5):
                    nursery.start_soon(one)
                await trio.testing.wait_all_tasks_blocked()  # the others queue behind it
                assert reads.batches == 1 and answered == []
                scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                assert answered == ["cancelled"]
                other.bridge.loop.call_soon_threadsafe(release.set)
    finally:
        await other.close()
    # Every queued call was answered (no rows: no credential), in one more batch.
    assert answered == ["cancelled"] + [[]] * 5 and reads.batches == 2
