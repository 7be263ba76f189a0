"""Eager token refresh (seed 000 §D) against the sandbox: tokens expiring within the
hour are refreshed and stored re-encrypted; TikTok's are skipped; a revoked one marks
the credential unhealthy without retries."""

from __future__ import annotations

import time
import uuid

import trio

from deneva import tenants
from deneva.adapters.base import Platform
from deneva.credentials import CredentialRow, PlainTokens, SealedCredential, open_tokens, store_credential
from deneva.db import Database
from deneva.sync.tokens import expiring_tokens
from tests.adapters.conftest import ACCOUNTS, GOOGLE_REFRESH, META_TOKEN, TIKTOK_TOKEN, FakeClock, Sandbox
from tests.adapters.test_refresh import KEYS, sync_engine


async def _connect(db: Database, platform: str, tokens: PlainTokens) -> None:
    await db.transaction(lambda c: store_credential(c, KEYS, "acme", platform, ACCOUNTS[platform], tokens))


async def _access_token(db: Database, platform: str) -> tuple[str | None, float | None]:
    row = await db.fetchrow("SELECT * FROM platform_credentials WHERE platform = $1", platform)
    assert row is not None
    sealed = SealedCredential.from_row(row)
    tokens = open_tokens(KEYS, CredentialRow.from_row(row), sealed)
    expires = row["access_token_expires_at"]
    return tokens.access_token, None if expires is None else expires.timestamp()


async def test_expiring_tokens_are_refreshed_and_tiktok_is_skipped(
    db: Database, sandbox: Sandbox, adapters: dict[str, Platform], clock: FakeClock
) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    soon = time.time() + 1800
    await _connect(db, "google", PlainTokens(GOOGLE_REFRESH, "old-google-access", soon))
    await _connect(db, "meta", PlainTokens(None, META_TOKEN, soon))
    await _connect(db, "tiktok", PlainTokens(None, TIKTOK_TOKEN, None))
    events = await db.run(lambda c: expiring_tokens(c, time.time()))
    assert len(events) == 2  # google and meta; tiktok tokens do not expire
    async with sync_engine(db, adapters) as engine:
        run_id = await engine.invoke("eager-token-refresh")
        assert (await engine.wait_for_run(run_id, 30)).status == "succeeded"
        with trio.fail_after(30):
            while (
                await db.fetchval(
                    "SELECT count(*) FROM engine_runs WHERE function_id = 'refresh-one-token' "
                    "AND status = 'succeeded'"
                )
                < 2
            ):
                await trio.sleep(0.05)
    google, google_expiry = await _access_token(db, "google")
    meta, meta_expiry = await _access_token(db, "meta")
    # Expiry is reckoned on the adapters' clock (a fixed one in these tests).
    assert google not in (None, "old-google-access") and google_expiry == clock.now + 3599
    assert meta not in (None, META_TOKEN) and meta_expiry and meta_expiry > clock.now + 86400
    assert await db.fetchval("SELECT count(*) FROM platform_credentials WHERE healthy") == 3


async def test_a_revoked_refresh_token_marks_the_credential_unhealthy(
    db: Database, sandbox: Sandbox, adapters: dict[str, Platform]
) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    await _connect(db, "google", PlainTokens(GOOGLE_REFRESH, "old", time.time() + 600))
    await sandbox.token_action("revoke", "google", GOOGLE_REFRESH)
    credential_id = await db.fetchval("SELECT id FROM platform_credentials")
    async with sync_engine(db, adapters) as engine:
        sent = await engine.send(
            {"name": "sync/token.refresh-requested", "data": {"credential_id": str(credential_id)}}
        )
        record = await engine.wait_for_run(sent.run_ids[0], 30)
    assert record.status == "failed" and record.attempt == 1
    row = await db.fetchrow("SELECT healthy, last_error_code FROM platform_credentials")
    assert row is not None and row["healthy"] is False and row["last_error_code"] == "token_revoked"
    # Not tried again (until reconnected); counted as skipped, with why.
    assert await db.run(lambda c: expiring_tokens(c, time.time())) == ([], {"revoked": 1})
    assert isinstance(credential_id, uuid.UUID)
