"""Envelope encryption of platform credentials (AES-GCM data key under DENEVA_KEK)."""

from __future__ import annotations

import os
import uuid

import pytest

from deneva import tenants
from deneva.credentials import (
    CredentialError,
    PlainTokens,
    SealedCredential,
    open_tokens,
    seal_tokens,
    store_credential,
)
from deneva.db import Database

KEK = os.urandom(32)
TENANT = uuid.uuid4()


def test_tokens_round_trip_and_never_appear_in_ciphertext_or_repr() -> None:
    tokens = PlainTokens("1//refresh-secret", "ya29.access-secret", 1_800_000_000.0)
    sealed = seal_tokens(KEK, TENANT, "google", "1234567890", tokens)
    blob = sealed.wrapped_key + (sealed.refresh_token_ct or b"") + (sealed.access_token_ct or b"")
    assert b"refresh-secret" not in blob and b"access-secret" not in blob
    assert "secret" not in repr(tokens)
    opened = open_tokens(KEK, TENANT, "google", "1234567890", sealed, 1_800_000_000.0)
    assert opened == tokens


def test_wrong_kek_corruption_and_moved_ciphertext_are_clear_errors() -> None:
    sealed = seal_tokens(KEK, TENANT, "meta", "42", PlainTokens(None, "EAAB-secret"))
    with pytest.raises(CredentialError, match="wrong DENEVA_KEK or corrupted"):
        open_tokens(os.urandom(32), TENANT, "meta", "42", sealed)
    flipped = bytearray(sealed.access_token_ct or b"")
    flipped[-1] ^= 1
    with pytest.raises(CredentialError, match="cannot decrypt"):
        open_tokens(KEK, TENANT, "meta", "42", SealedCredential(sealed.wrapped_key, None, bytes(flipped)))
    with pytest.raises(CredentialError, match="truncated"):
        open_tokens(KEK, TENANT, "meta", "42", SealedCredential(sealed.wrapped_key, None, b"short"))
    # A ciphertext copied onto another account's row does not open there.
    with pytest.raises(CredentialError, match="cannot decrypt"):
        open_tokens(KEK, TENANT, "meta", "43", sealed)


async def test_store_credential_encrypts_and_replaces(db: Database) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    first = await db.transaction(
        lambda c: store_credential(c, KEK, "acme", "tiktok", "7001", PlainTokens(None, "tt-secret-1"))
    )
    again = await db.transaction(
        lambda c: store_credential(c, KEK, "acme", "tiktok", "7001", PlainTokens(None, "tt-secret-2"))
    )
    assert first["new"] is True and again["new"] is False and first["id"] == again["id"]
    row = await db.fetchrow("SELECT * FROM platform_credentials")
    assert row is not None and b"tt-secret" not in bytes(row["access_token_ct"])
    sealed = SealedCredential.from_row(row)
    assert open_tokens(KEK, row["tenant_id"], "tiktok", "7001", sealed).access_token == "tt-secret-2"


@pytest.mark.parametrize(
    ("platform", "account", "tokens", "message"),
    [
        ("yahoo", "1", PlainTokens(None, "t"), "PLATFORM: expected one of"),
        ("google", "1", PlainTokens(None, "t"), "refresh token is required"),
        ("meta", "act 1", PlainTokens(None, "t"), "--account"),
        ("tiktok", "1", PlainTokens(None, "two words"), "one line"),
    ],
)
async def test_bad_connect_input_is_named(
    db: Database, platform: str, account: str, tokens: PlainTokens, message: str
) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    with pytest.raises(CredentialError, match=message):
        await db.transaction(lambda c: store_credential(c, KEK, "acme", platform, account, tokens))
