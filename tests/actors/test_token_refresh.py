"""Token refresh (seed 000 §D; issue 10): the actor is driven by deadlines, not a poll;
the eager and the lazy refresh of one credential never run at once, in one process or
several; a refresh never writes over a reconnect. Real circuit, real sandbox over HTTP,
real database, virtual time."""

from __future__ import annotations

import logging
import uuid

import attrs
import pytest
import trio
import trio.testing

from deneva import tenants
from deneva.credentials import CredentialRow, PlainTokens, SealedCredential, open_tokens, store_credential
from deneva.db import Database
from deneva.sync.credentials import expiring, refresh_credential
from deneva.sync.model import TOKEN_EVENT, Account, KeyedLocks
from tests.adapters.conftest import ACCOUNTS, GOOGLE_REFRESH, META_TOKEN
from tests.engine.conftest import EPOCH
from tests.sync.harness import KEYS, World, world

GOOGLE = ACCOUNTS["google"]


async def _connect(db: Database, tenant: str, platform: str, tokens: PlainTokens, account: str) -> None:
    await db.transaction(lambda c: store_credential(c, KEYS, tenant, platform, account, tokens))


async def _refresh_runs(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT status, event->'data'->>'credential_id' AS credential FROM engine_runs "
        "WHERE function_id = 'refresh-one-token' ORDER BY created_at"
    )
    return [(r["status"], r["credential"]) for r in rows]


async def _stored(w: World, tenant: uuid.UUID, platform: str = "google") -> tuple[PlainTokens, float, int]:
    row = await w.db.fetchrow(
        "SELECT * FROM platform_credentials WHERE tenant_id = $1 AND platform = $2", tenant, platform
    )
    assert row is not None
    tokens = open_tokens(KEYS, CredentialRow.from_row(row), SealedCredential.from_row(row))
    return tokens, row["access_token_expires_at"].timestamp(), row["token_version"]


async def test_the_actor_sleeps_until_each_deadline_and_refreshes_then(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    now = EPOCH
    acme = (await db.transaction(lambda c: tenants.add_tenant(c, "acme"))).id
    globex = (await db.transaction(lambda c: tenants.add_tenant(c, "globex"))).id
    await _connect(db, "acme", "google", PlainTokens(GOOGLE_REFRESH, "acme-access", now + 30 * 60), GOOGLE)
    await _connect(
        db, "globex", "google", PlainTokens(GOOGLE_REFRESH, "globex-access", now + 24 * 3600), GOOGLE
    )
    # Meta's long-lived token is exchanged 3 days before it expires: here, in 2 hours.
    meta_expiry = now + 3 * 86400 + 2 * 3600
    await _connect(db, "acme", "meta", PlainTokens(None, META_TOKEN, meta_expiry), ACCOUNTS["meta"])
    async with world(db, token_refresh=True) as w:
        actor = w.circuit.actor("token-refresh")
        start = w.clock.now()
        # Asleep until the first deadline (acme's Google token: its expiry minus 10 minutes).
        assert actor.next_wake == now + 20 * 60
        await trio.sleep(start + 19 * 60 - w.clock.now())
        assert await _refresh_runs(db) == []
        await trio.sleep(2 * 60)
        [(status, refreshed)] = await _refresh_runs(db)
        acme_google = await db.fetchval(
            "SELECT id FROM platform_credentials WHERE tenant_id = $1 AND platform = 'google'", acme
        )
        assert (status, refreshed) == ("succeeded", str(acme_google))
        tokens, expires_at, version = await _stored(w, acme)
        assert tokens.access_token != "acme-access" and expires_at > now + 60 * 60 and version == 2
        # The next deadline is the new token's expiry minus 10 minutes: no polling in between.
        assert actor.next_wake == expires_at - 600
        untouched = await _stored(w, globex)
        assert untouched[0].access_token == "globex-access" and untouched[2] == 1
        # Meta's token comes due at 2 h; acme's Google token is renewed every 50 minutes meanwhile.
        await trio.sleep(start + 2 * 3600 + 60 - w.clock.now())
        meta, meta_expires, _ = await _stored(w, acme, "meta")
        assert meta.access_token != META_TOKEN and meta_expires > meta_expiry + 50 * 86400
        runs = await _refresh_runs(db)
        google_refreshes = [r for r in runs if r[1] == str(acme_google)]
        # Each refreshed token lives an hour (the sandbox's) and is renewed 10 minutes early.
        lifetime = expires_at - (start + 20 * 60)
        expected = 1 + int((w.clock.now() - (start + 20 * 60)) // (lifetime - 600))
        assert len(google_refreshes) == expected == 3
        assert len(runs) == expected + 1 and all(status == "succeeded" for status, _ in runs)
        # One platform call per refresh: nothing else refreshed these tokens.
        assert await w.sandbox.calls("google", "token") == expected
        assert (await _stored(w, globex))[2] == 1  # due only at 23 h 50 min


async def test_a_credential_connected_later_wakes_the_actor_at_once(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db, token_refresh=True) as w:
        actor = w.circuit.actor("token-refresh")
        await w.tenant("acme")
        asleep_until = actor.next_wake
        assert asleep_until is not None and asleep_until >= w.clock.now() + 14 * 60  # nothing to refresh
        await w.connect("acme", "google", expires_at=w.clock.now() + 5 * 60, access="short-lived")
        # The connect's NOTIFY (deneva_credentials) reaches the actor through the listener.
        with trio.fail_after(60):
            while not await _refresh_runs(db) or (await _refresh_runs(db))[0][0] != "succeeded":
                await trio.sleep(0.05)
        assert w.clock.now() < asleep_until


async def test_lazy_and_eager_refreshes_of_one_credential_call_the_platform_once(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google", expires_at=w.clock.now() - 60, access="expired-access")
        credential = await db.fetchval("SELECT id FROM platform_credentials")
        await w.sandbox.faults("google", {"latency_ms": 5000, "endpoints": ["token"]})
        # The report's fetch finds the token expired (the adapter's lazy refresh) while the
        # eager refresh of the same credential is under way.
        report = await w.send_refresh(acme)
        eager = await w.engine.send({"name": TOKEN_EVENT, "data": {"credential_id": str(credential)}})
        fetched, refreshed = await w.wait(report), await w.wait(eager.run_ids[0])
        assert await w.sandbox.calls("google", "token") == 1
    assert fetched.status == "succeeded" and refreshed.status == "succeeded"
    tokens, _, version = await _stored(w, acme)
    assert tokens.access_token != "expired-access" and version == 2  # one write


async def test_refreshes_in_two_processes_are_serialised_by_the_lease(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google", expires_at=w.clock.now() + 60, access="old-access")
        await w.sandbox.faults("google", {"latency_ms": 5000, "endpoints": ["token"]})
        one = w.runtime.get()
        # Another process: its own locks, its own lease owner, the same database.
        other = attrs.evolve(one, owner="replica-b", token_locks=KeyedLocks())
        account = Account(acme, "google", GOOGLE)
        results = []

        async def refresh(services: object) -> None:
            results.append(
                await refresh_credential(services, account, lambda c, now: expiring(c, now, 600))  # type: ignore[arg-type]
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refresh, one)
            nursery.start_soon(refresh, other)
        assert await w.sandbox.calls("google", "token") == 1
    assert sorted(r.refreshed for r in results) == [False, True]
    assert results[0].creds.access_token == results[1].creds.access_token != "old-access"
    assert await db.fetchval("SELECT refresh_owner FROM platform_credentials") is None  # lease given up


async def test_a_refresh_never_writes_over_a_reconnect(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    async with world(db) as w:
        acme = await w.tenant("acme")
        await w.connect("acme", "google", expires_at=w.clock.now() + 60, access="old-access")
        await w.sandbox.faults("google", {"latency_ms": 10_000, "endpoints": ["token"]})
        services = w.runtime.get()
        reconnected_at = w.clock.now()
        outcome = []

        async def refresh() -> None:
            outcome.append(
                await refresh_credential(
                    services, Account(acme, "google", GOOGLE), lambda c, now: expiring(c, now, 600)
                )
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(refresh)
            await trio.sleep(2)  # the token call is under way
            assert await w.sandbox.calls("google", "token") == 1
            # `deneva connect` again, with new tokens, while the refresh waits on Google.
            await w.connect("acme", "google", expires_at=reconnected_at + 7200, access="reconnected-access")
    [result] = outcome
    assert result.skipped == "credential changed"
    tokens, expires_at, version = await _stored(w, acme)
    assert tokens.access_token == "reconnected-access" and expires_at == reconnected_at + 7200
    assert version == 2  # the reconnect's write; the refresh wrote nothing
    assert result.creds.access_token == "reconnected-access"


async def test_credentials_waiting_for_a_reconnect_are_logged_at_start_and_daily(
    db: Database, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    now = EPOCH
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    await db.transaction(lambda c: tenants.add_tenant(c, "globex"))
    # Meta's token expires in 5 days: no refresh is due yet (3 days), but Meta cannot extend it.
    await _connect(db, "acme", "meta", PlainTokens(None, META_TOKEN, now + 5 * 86400), ACCOUNTS["meta"])
    await _connect(db, "globex", "google", PlainTokens(GOOGLE_REFRESH, "a", now + 86400), GOOGLE)
    await _connect(db, "acme", "google", PlainTokens(GOOGLE_REFRESH, "b", now + 86400), GOOGLE)
    await db.execute(
        "UPDATE platform_credentials SET last_error_code = 'token_revoked', healthy = false "
        "WHERE platform = 'google' AND tenant_id = (SELECT id FROM tenants WHERE name = 'globex')"
    )

    def logged() -> list[str]:
        return [
            r.__dict__["command"] for r in caplog.records if r.getMessage().startswith("reconnect needed")
        ]

    with caplog.at_level(logging.WARNING, logger="deneva.sync"):
        async with world(db, token_refresh=True) as w:
            assert sorted(logged()) == [
                f"deneva connect google --tenant globex --account {GOOGLE}",
                f"deneva connect meta --tenant acme --account {ACCOUNTS['meta']}",
            ]
            caplog.clear()
            await trio.sleep(23 * 3600)
            assert logged() == []  # once a day, not every round
            await trio.sleep(3600 + 60)
            assert len(logged()) == 2
            assert w.clock.now() >= now + 86400
