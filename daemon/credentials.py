"""Platform credentials, envelope-encrypted at rest.

Each credential row gets its own random 256-bit data key. Tokens are sealed with
AES-GCM under that data key, with the row's identity (tenant, platform, account)
as associated data, so a ciphertext moved to another row does not open. The data
key itself is sealed with AES-GCM under `DENEVA_KEK`. Plaintext tokens exist only
in memory, for the call that needs them, and never reach logs or responses.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deneva.db import Connection
from deneva.errors import DenevaError
from deneva.sql import query
from deneva.tenants import tenant_by_name

PLATFORMS = ("google", "meta", "tiktok")
_NONCE = 12
_DEK_AAD = b"deneva:data-key:v1"
CHANGED_CHANNEL = "deneva_credentials"  # NOTIFYed when a credential's tokens change
_CONNECT = query("credentials_connect")
_LOAD = query("credentials_load")
_STORE_TOKENS = query("credentials_store_tokens")
_AUDIT_CONNECTED = query("credentials_audit_connected")


class CredentialError(DenevaError):
    """A credential cannot be stored or opened (bad input, wrong KEK, corrupted data)."""


@attrs.frozen(repr=False)
class PlainTokens:
    refresh_token: str | None
    access_token: str | None
    access_token_expires_at: float | None = None

    def __repr__(self) -> str:
        return "PlainTokens(***)"


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes, what: str) -> bytes:
    if len(sealed) < _NONCE + 16:
        raise CredentialError(f"{what}: ciphertext is truncated")
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
    except InvalidTag:
        raise CredentialError(f"{what}: cannot decrypt (wrong DENEVA_KEK or corrupted data)") from None


def _identity(tenant_id: uuid.UUID, platform: str, account_id: str) -> bytes:
    return f"deneva:credential:v1|{tenant_id}|{platform}|{account_id}".encode()


@attrs.frozen
class SealedCredential:
    wrapped_key: bytes
    refresh_token_ct: bytes | None
    access_token_ct: bytes | None

    @classmethod
    def from_row(cls, row: Any) -> SealedCredential:
        """From a `platform_credentials` row (its three bytea columns)."""

        def blob(value: Any) -> bytes | None:
            return None if value is None else bytes(value)

        return cls(bytes(row["wrapped_key"]), blob(row["refresh_token_ct"]), blob(row["access_token_ct"]))


def _expires(tokens: PlainTokens) -> datetime | None:
    at = tokens.access_token_expires_at
    return None if at is None else datetime.fromtimestamp(at, UTC)


def seal_tokens(
    kek: bytes, tenant_id: uuid.UUID, platform: str, account_id: str, tokens: PlainTokens
) -> SealedCredential:
    data_key = AESGCM.generate_key(bit_length=256)
    aad = _identity(tenant_id, platform, account_id)

    def seal(token: str | None) -> bytes | None:
        return None if token is None else _seal(data_key, token.encode(), aad)

    return SealedCredential(
        _seal(kek, data_key, _DEK_AAD), seal(tokens.refresh_token), seal(tokens.access_token)
    )


def open_tokens(
    kek: bytes,
    tenant_id: uuid.UUID,
    platform: str,
    account_id: str,
    sealed: SealedCredential,
    expires_at: float | None = None,
) -> PlainTokens:
    what = f"{platform} credential for account {account_id}"
    data_key = _open(kek, sealed.wrapped_key, _DEK_AAD, what)
    aad = _identity(tenant_id, platform, account_id)

    def open_one(ct: bytes | None) -> str | None:
        return None if ct is None else _open(data_key, ct, aad, what).decode()

    return PlainTokens(open_one(sealed.refresh_token_ct), open_one(sealed.access_token_ct), expires_at)


def check_connect_input(platform: str, account_id: str, tokens: PlainTokens) -> None:
    if platform not in PLATFORMS:
        raise CredentialError(f"PLATFORM: expected one of {', '.join(PLATFORMS)}, got {platform!r}")
    if not account_id or len(account_id) > 64 or not all(c.isalnum() or c in "-_" for c in account_id):
        raise CredentialError(
            f"--account: expected an account id of letters, digits, '-' or '_', got {account_id!r}"
        )
    if platform == "google" and not tokens.refresh_token:
        raise CredentialError("google: a refresh token is required (--token-kind refresh)")
    if platform in ("meta", "tiktok") and not tokens.access_token:
        raise CredentialError(f"{platform}: an access token is required (--token-kind access)")
    for token in (tokens.refresh_token, tokens.access_token):
        if token is not None and (not token.strip() or len(token) > 4096 or any(c.isspace() for c in token)):
            raise CredentialError("token: expected one line of up to 4096 non-space characters")


async def store_credential(
    conn: Connection, kek: bytes, tenant_name: str, platform: str, account_id: str, tokens: PlainTokens
) -> dict[str, Any]:
    """Insert or replace a tenant's credential for one account (the row becomes healthy,
    and a token refresh under way for it will not write over the new tokens)."""
    check_connect_input(platform, account_id, tokens)
    tenant = await tenant_by_name(conn, tenant_name)
    sealed = seal_tokens(kek, tenant.id, platform, account_id, tokens)
    row = await conn.fetchrow(
        _CONNECT,
        tenant.id,
        platform,
        account_id,
        sealed.wrapped_key,
        sealed.refresh_token_ct,
        sealed.access_token_ct,
        _expires(tokens),
    )
    assert row is not None
    await conn.execute(_AUDIT_CONNECTED, tenant.id, {"platform": platform, "account_id": account_id})
    return {
        "id": str(row["id"]),
        "tenant": tenant.name,
        "platform": platform,
        "account": account_id,
        "new": row["inserted"],
    }


@attrs.frozen
class StoredCredential:
    """A credential as read, with the version a later token write must match."""

    id: uuid.UUID
    sealed: SealedCredential
    access_token_expires_at: float | None
    version: int


async def load_credential(
    conn: Connection, tenant_id: uuid.UUID, platform: str, account_id: str
) -> StoredCredential | None:
    row = await conn.fetchrow(_LOAD, tenant_id, platform, account_id)
    if row is None:
        return None
    expires = row["access_token_expires_at"]
    return StoredCredential(
        row["id"],
        SealedCredential.from_row(row),
        None if expires is None else expires.timestamp(),
        row["token_version"],
    )


async def store_tokens(
    conn: Connection,
    kek: bytes,
    tenant_id: uuid.UUID,
    platform: str,
    account_id: str,
    tokens: PlainTokens,
    *,
    expected_version: int,
    lease_owner: str = "",
) -> int | None:
    """Replace a credential's tokens (after a refresh), sealed under a fresh data key, only
    if the credential is still at `expected_version` (compare-and-set: a reconnect since
    it was read wins). Gives up `lease_owner`'s refresh lease. The new version, or None
    when the credential changed meanwhile (nothing written)."""
    sealed = seal_tokens(kek, tenant_id, platform, account_id, tokens)
    version = await conn.fetchval(
        _STORE_TOKENS,
        tenant_id,
        platform,
        account_id,
        sealed.wrapped_key,
        sealed.refresh_token_ct,
        sealed.access_token_ct,
        _expires(tokens),
        expected_version,
        lease_owner,
    )
    return None if version is None else int(version)
