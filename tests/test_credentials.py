"""Envelope encryption of platform credentials (AES-GCM data key under DENEVA_KEK):
ciphertexts bound to their row and field, the KEK named on each row, rotation."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import os
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deneva import tenants
from deneva.credentials import (
    CredentialError,
    CredentialRow,
    Keyring,
    PlainTokens,
    Rotation,
    SealedCredential,
    check_connect_input,
    kek_id,
    open_data_key,
    open_tokens,
    rotate_kek,
    seal_tokens,
    store_credential,
)
from deneva.db import Database
from deneva.secrets import init_secrets
from tests.test_cli_engine import _cli

KEYS = Keyring(os.urandom(32))
ROW = CredentialRow(uuid.uuid4(), uuid.uuid4(), "google", "1234567890")


def test_tokens_round_trip_and_never_appear_in_ciphertext_or_repr() -> None:
    tokens = PlainTokens("1//refresh-secret", "ya29.access-secret", 1_800_000_000.0)
    sealed = seal_tokens(KEYS, ROW, tokens)
    blob = sealed.wrapped_key + (sealed.refresh_token_ct or b"") + (sealed.access_token_ct or b"")
    assert b"refresh-secret" not in blob and b"access-secret" not in blob
    assert "secret" not in repr(tokens)
    assert sealed.kek_id == KEYS.current_id == kek_id(KEYS.current)
    assert KEYS.current.hex() not in repr(KEYS) and KEYS.current_id in repr(KEYS)
    assert open_tokens(KEYS, ROW, sealed, 1_800_000_000.0) == tokens


def test_wrong_kek_corruption_and_moved_ciphertext_are_clear_errors() -> None:
    row = CredentialRow(uuid.uuid4(), ROW.tenant_id, "meta", "42")
    sealed = seal_tokens(KEYS, row, PlainTokens(None, "EAAB-secret"))
    with pytest.raises(CredentialError, match="neither DENEVA_KEK .* nor DENEVA_KEK_PREVIOUS"):
        open_tokens(Keyring(os.urandom(32)), row, sealed)
    flipped = bytearray(sealed.access_token_ct or b"")
    flipped[-1] ^= 1
    with pytest.raises(CredentialError, match="cannot decrypt"):
        open_tokens(KEYS, row, SealedCredential(sealed.wrapped_key, sealed.kek_id, None, bytes(flipped)))
    with pytest.raises(CredentialError, match="truncated"):
        open_tokens(KEYS, row, SealedCredential(sealed.wrapped_key, sealed.kek_id, None, b"short"))
    # The whole sealed credential copied onto another account's row, or another tenant's.
    for elsewhere in (
        CredentialRow(uuid.uuid4(), row.tenant_id, "meta", "43"),
        CredentialRow(row.id, uuid.uuid4(), "meta", "42"),
    ):
        with pytest.raises(CredentialError, match="cannot decrypt"):
            open_tokens(KEYS, elsewhere, sealed)


def test_the_access_and_refresh_ciphertexts_of_a_row_cannot_be_swapped() -> None:
    sealed = seal_tokens(KEYS, ROW, PlainTokens("1//refresh-secret", "ya29.access-secret"))
    swapped = SealedCredential(
        sealed.wrapped_key, sealed.kek_id, sealed.access_token_ct, sealed.refresh_token_ct
    )
    with pytest.raises(CredentialError, match="cannot decrypt"):
        open_tokens(KEYS, ROW, swapped)


def test_a_wrapped_data_key_opens_only_on_its_own_row_and_under_its_own_kek_id() -> None:
    sealed = seal_tokens(KEYS, ROW, PlainTokens("1//refresh-secret", None))
    assert len(open_data_key(KEYS, ROW, sealed)) == 32
    other_row = CredentialRow(uuid.uuid4(), ROW.tenant_id, ROW.platform, ROW.account_id)
    with pytest.raises(CredentialError, match="cannot decrypt"):
        open_data_key(KEYS, other_row, sealed)
    # Claimed to be wrapped by another KEK of the ring: the name is part of what was sealed.
    other = os.urandom(32)
    ring = Keyring(KEYS.current, (other,))
    with pytest.raises(CredentialError, match="cannot decrypt"):
        open_data_key(ring, ROW, SealedCredential(sealed.wrapped_key, kek_id(other), None, None))


def _legacy_seal(
    kek: bytes, row: CredentialRow, tokens: PlainTokens
) -> tuple[bytes, bytes | None, bytes | None]:
    """What deneva stored before migration 0007 (format 1): the data key wrapped with a
    fixed label, both tokens sealed with the same (tenant, platform, account) label."""

    def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    data_key = AESGCM.generate_key(bit_length=256)
    aad = f"deneva:credential:v1|{row.tenant_id}|{row.platform}|{row.account_id}".encode()

    def token(value: str | None) -> bytes | None:
        return None if value is None else seal(data_key, value.encode(), aad)

    return seal(kek, data_key, b"deneva:data-key:v1"), token(tokens.refresh_token), token(tokens.access_token)


async def _make_legacy(db: Database, kek: bytes, credential_id: uuid.UUID, tokens: PlainTokens) -> None:
    row = await db.fetchrow("SELECT * FROM platform_credentials WHERE id = $1", credential_id)
    assert row is not None
    wrapped, refresh, access = _legacy_seal(kek, CredentialRow.from_row(row), tokens)
    await db.execute(
        "UPDATE platform_credentials SET wrapped_key = $2, kek_id = NULL, refresh_token_ct = $3, "
        "access_token_ct = $4 WHERE id = $1",
        credential_id,
        wrapped,
        refresh,
        access,
    )


async def _open_all(db: Database, keys: Keyring) -> dict[uuid.UUID, PlainTokens]:
    rows = await db.fetch("SELECT * FROM platform_credentials")
    return {r["id"]: open_tokens(keys, CredentialRow.from_row(r), SealedCredential.from_row(r)) for r in rows}


async def _connect(db: Database, keys: Keyring, tenant: str, account: str, tokens: PlainTokens) -> uuid.UUID:
    stored = await db.transaction(lambda c: store_credential(c, keys, tenant, "tiktok", account, tokens))
    return uuid.UUID(stored["id"])


async def test_store_credential_encrypts_and_replaces(db: Database) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    first = await db.transaction(
        lambda c: store_credential(c, KEYS, "acme", "tiktok", "7001", PlainTokens(None, "tt-secret-1"))
    )
    again = await db.transaction(
        lambda c: store_credential(c, KEYS, "acme", "tiktok", "7001", PlainTokens(None, "tt-secret-2"))
    )
    assert first["new"] is True and again["new"] is False and first["id"] == again["id"]
    row = await db.fetchrow("SELECT * FROM platform_credentials")
    assert row is not None and b"tt-secret" not in bytes(row["access_token_ct"])
    assert row["kek_id"] == KEYS.current_id and row["token_version"] == 2
    sealed = SealedCredential.from_row(row)
    assert open_tokens(KEYS, CredentialRow.from_row(row), sealed).access_token == "tt-secret-2"


async def test_a_credential_stored_before_migration_0007_still_opens(db: Database) -> None:
    old, new = os.urandom(32), os.urandom(32)
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    legacy = await _connect(db, Keyring(old), "acme", "7001", PlainTokens(None, "x"))
    await _make_legacy(db, old, legacy, PlainTokens(None, "tt-legacy"))
    for keys in (Keyring(old), Keyring(new, (old,))):
        assert (await _open_all(db, keys))[legacy].access_token == "tt-legacy"
    with pytest.raises(CredentialError, match="cannot decrypt"):
        await _open_all(db, Keyring(new))


async def test_rotating_the_kek_rewraps_every_credential_in_batches_and_each_stays_readable_meanwhile(
    db: Database,
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before, during, after = Keyring(old), Keyring(new, (old,)), Keyring(new)
    expected: dict[uuid.UUID, PlainTokens] = {}
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    await db.transaction(lambda c: tenants.add_tenant(c, "globex"))
    for n in range(9):
        tenant, tokens = ("acme", "globex")[n % 2], PlainTokens(f"refresh-{n}", f"access-{n}")
        credential = await _connect(db, before, tenant, f"700{n}", tokens)
        if n in (2, 5):  # two stored by the version before migration 0007
            await _make_legacy(db, old, credential, tokens)
        expected[credential] = tokens
    progress: list[tuple[int, int]] = []

    async def between_batches(rewrapped: int) -> None:
        assert await _open_all(db, during) == expected  # every row opens, old key or new
        under = collections.Counter(
            r["kek_id"] for r in await db.fetch("SELECT kek_id FROM platform_credentials")
        )
        progress.append((rewrapped, under[after.current_id]))

    done = await rotate_kek(db, during, batch=3, after_batch=between_batches)
    assert done == Rotation(after.current_id, rewrapped=9, reformatted=2, unreadable=(), remaining=0)
    assert progress == [(3, 3), (6, 6), (9, 9)]
    assert await _open_all(db, after) == expected  # the new key alone opens every row
    with pytest.raises(CredentialError):
        await _open_all(db, before)
    again = await rotate_kek(db, after)
    assert (again.rewrapped, again.remaining) == (0, 0)
    # Re-wrapping is not a token change: a refresh that read a row before still writes.
    assert {r["token_version"] for r in await db.fetch("SELECT token_version FROM platform_credentials")} == {
        1
    }


async def test_a_credential_no_key_of_the_ring_opens_is_left_and_counted(db: Database) -> None:
    old, new, stray = os.urandom(32), os.urandom(32), os.urandom(32)
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    await _connect(db, Keyring(old), "acme", "7001", PlainTokens(None, "a"))
    lost = await _connect(db, Keyring(stray), "acme", "7002", PlainTokens(None, "b"))
    done = await rotate_kek(db, Keyring(new, (old,)))
    assert (done.rewrapped, done.unreadable, done.remaining) == (1, (lost,), 1)


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
        await db.transaction(lambda c: store_credential(c, KEYS, "acme", platform, account, tokens))


def _tokens_with(database_url: str, kek: bytes) -> list[str | None]:
    async def read() -> list[Any]:
        conn = await asyncpg.connect(database_url)  # the superuser: it sees every row
        try:
            return list(await conn.fetch("SELECT * FROM platform_credentials ORDER BY account_id"))
        finally:
            await conn.close()

    rows = asyncio.run(read())
    keys = Keyring(kek)
    return [
        open_tokens(keys, CredentialRow.from_row(r), SealedCredential.from_row(r)).access_token for r in rows
    ]


def test_the_rotate_kek_command_moves_every_credential_to_the_new_key(
    tmp_path: Path, database_url: str
) -> None:
    secrets = tmp_path / "state" / "secrets"  # where the CLI looks without DENEVA_SECRETS_DIR
    init_secrets(secrets)
    token = tmp_path / "token"
    token.write_text("tt-secret\n")
    assert _cli(tmp_path, database_url, "tenant", "add", "acme").returncode == 0
    for account in ("7001", "7002", "7003"):
        connected = _cli(
            tmp_path, database_url, "connect", "tiktok", "--tenant", "acme", "--account", account,
            "--token-file", str(token),
        )  # fmt: skip
        assert connected.returncode == 0, connected.stderr
    # The operator's rotation: the old key becomes DENEVA_KEK_PREVIOUS, a new DENEVA_KEK is made.
    (secrets / "DENEVA_KEK").rename(secrets / "DENEVA_KEK_PREVIOUS")
    assert init_secrets(secrets) == ["DENEVA_KEK"]
    new = base64.b64decode((secrets / "DENEVA_KEK").read_text())
    rotated = _cli(tmp_path, database_url, "secrets", "rotate-kek", "--batch", "2", "--json")
    assert rotated.returncode == 0, rotated.stderr
    summary = json.loads(rotated.stdout)
    assert summary == {
        "kekId": kek_id(new),
        "rewrapped": 3,
        "reformatted": 0,
        "unreadable": [],
        "remaining": 0,
    }
    (secrets / "DENEVA_KEK_PREVIOUS").unlink()
    assert _tokens_with(database_url, new) == ["tt-secret"] * 3
    again = _cli(tmp_path, database_url, "secrets", "rotate-kek")
    assert again.returncode == 0 and "re-wrapped 0 credential(s)" in again.stdout


def test_rotate_kek_without_the_previous_key_fails_naming_what_is_left(
    tmp_path: Path, database_url: str
) -> None:
    secrets = tmp_path / "state" / "secrets"
    init_secrets(secrets)
    token = tmp_path / "token"
    token.write_text("tt-secret\n")
    assert _cli(tmp_path, database_url, "tenant", "add", "acme").returncode == 0
    args = ("connect", "tiktok", "--tenant", "acme", "--account", "7001", "--token-file", str(token))
    assert _cli(tmp_path, database_url, *args).returncode == 0
    (secrets / "DENEVA_KEK").unlink()
    init_secrets(secrets)  # a new key, and the old one lost
    failed = _cli(tmp_path, database_url, "secrets", "rotate-kek")
    assert failed.returncode == 1
    assert "1 credential(s) are still under another key-encryption key" in failed.stderr


@pytest.mark.parametrize(
    ("platform", "account"),
    [
        ("google", "acme-ads"),
        ("meta", "act_12x"),
        ("tiktok", "70000\x00"),
        ("google", "1" * 21),
        ("meta", "1001\n"),
    ],
)
def test_only_an_account_id_the_tools_can_name_is_connected(platform: str, account: str) -> None:
    """The same ids as the MCP tools' accountId: an account connected under another form
    could never be named by a tool call."""
    tokens = PlainTokens("refresh", "access")
    with pytest.raises(CredentialError, match="--account: expected a"):
        check_connect_input(platform, account, tokens)
    check_connect_input(
        platform, {"google": "123-456-7890", "meta": "act_1001", "tiktok": "7"}[platform], tokens
    )
