"""The API-key cache: hits skip the database, revocation and a lost LISTEN empty it."""

from __future__ import annotations

import trio

from deneva.db import Database
from deneva.mcp.auth import KeyCache
from deneva.tenants import add_tenant, create_key, revoke_key


async def _key(db: Database, tenant: str = "acme") -> tuple[str, str]:
    async def make(conn: object) -> tuple[str, str]:
        t = await add_tenant(conn, tenant)  # type: ignore[arg-type]
        k = await create_key(conn, tenant)  # type: ignore[arg-type]
        return str(t.id), k.plaintext

    return await db.run(make)


async def test_without_the_listener_every_request_is_looked_up(db: Database) -> None:
    tenant, key = await _key(db)
    cache = KeyCache(db)
    assert await cache.authenticate(key) == tenant
    assert await cache.authenticate(key) == tenant
    assert cache.lookups == 2 and len(cache) == 0
    assert await cache.authenticate("not a key") is None
    assert await cache.authenticate("dnv_00000000_" + "x" * 43) is None
    assert cache.lookups == 3  # a malformed key never reaches the database


async def test_cached_keys_are_forgotten_when_revoked(db: Database) -> None:
    tenant, key = await _key(db)
    other_tenant, other = await _key(db, "globex")
    cache = KeyCache(db)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.run)
        with trio.fail_after(10):
            await cache.wait_until(live=True)
        assert await cache.authenticate(key) == tenant
        assert await cache.authenticate(other) == other_tenant
        lookups = cache.lookups
        assert await cache.authenticate(key) == tenant
        assert cache.lookups == lookups  # served from the cache
        applied = cache.next_change()
        await db.transaction(lambda conn: revoke_key(conn, key))
        with trio.fail_after(10):
            await applied.wait()
        assert await cache.authenticate(key) is None
        assert await cache.authenticate(other) == other_tenant
        assert cache.lookups == lookups + 1  # only the revoked key went back to the database
        nursery.cancel_scope.cancel()
    assert not cache.live and len(cache) == 0


async def test_a_lost_listen_connection_turns_the_cache_off_until_it_is_back(
    db: Database, database_url: str
) -> None:
    tenant, key = await _key(db)
    cache = KeyCache(db)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.run)
        with trio.fail_after(10):
            await cache.wait_until(live=True)
        await cache.authenticate(key)
        assert len(cache) == 1
        lost = cache.next_change()
        owner = await Database.open(database_url, role=None, min_size=1)
        await owner.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'deneva-listen' AND datname = current_database()"
        )
        await owner.close()
        with trio.fail_after(10):
            await lost.wait()
        assert len(cache) == 0
        if not cache.live:  # off until the reconnect: lookups are not cached
            lookups = cache.lookups
            assert await cache.authenticate(key) == tenant
            assert cache.lookups == lookups + 1 and len(cache) == 0
        with trio.fail_after(10):
            await cache.wait_until(live=True)
        assert len(cache) == 0
        nursery.cancel_scope.cancel()
