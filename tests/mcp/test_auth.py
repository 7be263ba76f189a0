"""The API-key cache: hits skip the database, unknown prefixes are remembered briefly,
nothing is trusted past its TTL; revocation, key creation, a lost or silent LISTEN
connection and an overflowing notification buffer empty it. OAuth access tokens are
cached alike and forgotten when their grant is revoked."""

from __future__ import annotations

import os
import secrets
import signal
import time
import uuid

import pytest
import trio
import trio.testing

from deneva.db import Database
from deneva.mcp.auth import KeyCache
from deneva.tenants import KEYS_CHANNEL, add_tenant, create_key, revoke_key


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


async def _live(cache: KeyCache, nursery: trio.Nursery) -> None:
    nursery.start_soon(cache.run)
    with trio.fail_after(10):
        await cache.wait_until(live=True)


async def test_cached_keys_are_looked_up_again_after_five_minutes(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    tenant, key = await _key(db)
    cache = KeyCache(db)
    async with trio.open_nursery() as nursery:
        await _live(cache, nursery)
        assert await cache.authenticate(key) == tenant
        lookups = cache.lookups
        await trio.sleep(299)
        assert await cache.authenticate(key) == tenant
        assert cache.lookups == lookups  # still cached (and the pings meanwhile were answered)
        assert cache.pings == 9
        await trio.sleep(1)
        assert await cache.authenticate(key) == tenant
        assert cache.lookups == lookups + 1  # expired: looked up, and cached again
        assert await cache.authenticate(key) == tenant
        assert cache.lookups == lookups + 1
        nursery.cancel_scope.cancel()


async def test_a_revoked_key_stops_working_within_five_minutes_when_its_notify_is_lost(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    tenant, key = await _key(db)
    cache = KeyCache(db)
    async with trio.open_nursery() as nursery:
        await _live(cache, nursery)
        assert await cache.authenticate(key) == tenant
        # Revoked without the NOTIFY (lost, or written by a hand that does not send it).
        await db.execute("UPDATE api_keys SET revoked_at = now() WHERE prefix = $1", key.split("_")[1])
        assert await cache.authenticate(key) == tenant  # the cache cannot know yet
        await trio.sleep(300)
        assert await cache.authenticate(key) is None
        nursery.cancel_scope.cancel()


async def test_unknown_keys_are_remembered_briefly_so_a_flood_costs_one_lookup(
    db: Database, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, key = await _key(db)
    cache = KeyCache(db, max_unknown=3)
    async with trio.open_nursery() as nursery:
        await _live(cache, nursery)
        assert await cache.authenticate(key) == tenant
        lookups = cache.lookups
        bad = "dnv_0badc0de_" + "x" * 43
        for i in range(500):  # one bad key, and that prefix with other secrets
            assert await cache.authenticate(bad if i % 2 else f"dnv_0badc0de_{i:043d}") is None
        # A wrong secret for a known prefix is refused by the cached hash.
        for i in range(100):
            assert await cache.authenticate(f"{key[:13]}{i:043d}") is None
        assert cache.lookups == lookups + 1
        # Bounded: a fourth unknown prefix pushes out the oldest.
        for prefix in ("00000001", "00000002", "00000003"):
            assert await cache.authenticate(f"dnv_{prefix}_" + "x" * 43) is None
        assert cache.lookups == lookups + 4
        assert await cache.authenticate(bad) is None
        assert cache.lookups == lookups + 5
        assert await cache.authenticate("dnv_00000003_" + "x" * 43) is None
        assert cache.lookups == lookups + 5
        # Briefly: ten seconds later the prefix is looked up again.
        await trio.sleep(10)
        assert await cache.authenticate(bad) is None
        assert cache.lookups == lookups + 6
        # A key created afterwards with a prefix remembered as unknown works at once: its
        # creation NOTIFYs the prefix, as revocation does.
        monkeypatch.setattr(secrets, "token_hex", lambda _n: "0badc0de")  # the prefix it draws
        changed = cache.next_change()
        created = await db.transaction(lambda conn: create_key(conn, "acme"))
        monkeypatch.undo()
        assert created.prefix == "0badc0de"
        with trio.fail_after(10):
            await changed.wait()
        assert await cache.authenticate(created.plaintext) == tenant
        nursery.cancel_scope.cancel()


async def test_a_full_notification_buffer_empties_the_cache(db: Database) -> None:
    """`Database.listen` drops a notification that finds its buffer full, so the cache
    cannot know which keys were revoked: it forgets them all."""
    tenant, key = await _key(db)
    cache = KeyCache(db)
    send, notes = trio.open_memory_channel[tuple[str, str]](4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.follow, notes)
        send.send_nowait((KEYS_CHANNEL, ""))  # connected
        with trio.fail_after(10):
            await cache.wait_until(live=True)
        assert await cache.authenticate(key) == tenant
        assert len(cache) == 1
        # A burst while the cache's task is elsewhere: listen's send_nowait, as it sends.
        changed = cache.next_change()
        for i in range(5):  # one goes straight to the waiting task, four fill the buffer
            send.send_nowait((KEYS_CHANNEL, f"0000000{i}"))
        with pytest.raises(trio.WouldBlock):  # listen drops this one
            send.send_nowait((KEYS_CHANNEL, "00000009"))
        await changed.wait()
        assert len(cache) == 0
        lookups = cache.lookups
        assert await cache.authenticate(key) == tenant
        assert cache.lookups == lookups + 1
        nursery.cancel_scope.cancel()


async def test_a_listen_connection_that_stops_echoing_pings_turns_the_cache_off(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    tenant, key = await _key(db)
    cache = KeyCache(db, ping_timeout_s=1.0)  # real seconds: the echo is real database work
    async with trio.open_nursery() as nursery:
        await _live(cache, nursery)
        assert await cache.authenticate(key) == tenant
        await trio.sleep(95)
        assert cache.pings == 3 and cache.live and len(cache) == 1
        listener = await db.fetchval(
            "SELECT pid FROM pg_stat_activity "
            "WHERE application_name = 'deneva-listen' AND datname = current_database()"
        )
        os.kill(listener, signal.SIGSTOP)  # the connection stays open but answers nothing
        try:
            with trio.fail_after(60):
                await cache.wait_until(live=False)
            assert len(cache) == 0
            lookups = cache.lookups
            assert await cache.authenticate(key) == tenant
            assert await cache.authenticate(key) == tenant
            assert cache.lookups == lookups + 2 and len(cache) == 0  # not cached while off
        finally:
            os.kill(listener, signal.SIGCONT)
        with trio.fail_after(60):
            await cache.wait_until(live=True)  # the next ping is echoed
        assert await cache.authenticate(key) == tenant
        assert len(cache) == 1
        nursery.cancel_scope.cancel()


async def _access_token(
    db: Database, tenant: str, resource: str = "http://127.0.0.1:1/mcp"
) -> tuple[str, str]:
    """(tenant id, access token) through the built-in authorization server's own functions."""
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    from deneva.clock import SystemClock
    from deneva.oauth.server import AuthorizationServer, ClientCredentials

    tenant_id, _ = await _key(db, tenant)
    server = AuthorizationServer(db, SystemClock())
    client = (
        await server.register(
            {"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"}
        )
    ).client
    code, _ = await server.create_connect_code(tenant)
    granted_to = await server.redeem_connect_code(code)
    assert granted_to is not None and str(granted_to) == tenant_id
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    request = await server.check_authorization(params, resource)
    grant_code = await server.approve(request, granted_to, "test")
    issued = await server.exchange_code(
        ClientCredentials(client.client_id), {"code": grant_code, "code_verifier": verifier}, resource
    )
    return tenant_id, issued.access_token


async def test_access_tokens_are_cached_and_forgotten_when_their_grant_is_revoked(db: Database) -> None:
    from deneva.oauth import store

    tenant, token = await _access_token(db, "acme")
    cache = KeyCache(db, max_unknown=3)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.run)
        with trio.fail_after(10):
            await cache.wait_until(live=True)
        grant = await cache.authenticate_access_token(token)
        assert grant is not None and grant.tenant_id == tenant
        assert (
            grant.scopes == {"reports:read", "reports:refresh"} and grant.resource == "http://127.0.0.1:1/mcp"
        )
        lookups = cache.lookups
        assert await cache.authenticate_access_token(token) == grant and cache.lookups == lookups
        # A wrong secret for a known id is refused from the cache.
        forged = token[:-43] + "A" * 43
        assert await cache.authenticate_access_token(forged) is None and cache.lookups == lookups
        # A flood of made-up ids costs a lookup each but never pushes the valid token out.
        for n in range(10):
            assert await cache.authenticate_access_token(f"dnv_at_{n:016x}_" + "x" * 43) is None
        assert cache.lookups == lookups + 10
        assert await cache.authenticate_access_token(token) == grant and cache.lookups == lookups + 10
        applied = cache.next_change()
        [listed] = await db.run(lambda conn: store.list_grants(conn, "acme"))
        await db.transaction(
            lambda conn: store.revoke_grant(conn, uuid.UUID(listed["grantId"]), time.time(), "test", "test")
        )
        with trio.fail_after(10):
            await applied.wait()
        assert await cache.authenticate_access_token(token) is None
        assert cache.lookups == lookups + 11  # looked up again, and refused
        nursery.cancel_scope.cancel()


async def test_an_expired_access_token_is_refused_from_the_cache(db: Database) -> None:
    _, token = await _access_token(db, "acme")
    clock = {"now": time.time()}
    cache = KeyCache(db, now=lambda: clock["now"])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(cache.run)
        with trio.fail_after(10):
            await cache.wait_until(live=True)
        grant = await cache.authenticate_access_token(token)
        assert grant is not None
        lookups = cache.lookups
        clock["now"] = grant.expires_at + 1
        assert await cache.authenticate_access_token(token) is None and cache.lookups == lookups
        nursery.cancel_scope.cancel()
