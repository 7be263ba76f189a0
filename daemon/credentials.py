"""Platform credentials, envelope-encrypted at rest.

Each credential row gets its own random 256-bit data key. Its tokens are sealed with
AES-GCM under that data key, and the data key is sealed ("wrapped") with AES-GCM under a
key-encryption key (KEK: the secret `DENEVA_KEK`). The associated data binds every
ciphertext to where it belongs:

- the wrapped data key to its KEK's id and to its row (tenant id, credential id), so it
  opens on no other row and under no other KEK's name;
- each token to its row and its field (`refresh_token`, `access_token`), so the two
  ciphertexts of a row cannot be swapped, nor moved to another row.

Each row records its KEK's id (`kek_id`, a fingerprint that does not reveal the key), so
the KEK can rotate: a `Keyring` seals with its current KEK (`DENEVA_KEK`) and opens rows
sealed under that or a previous one (`DENEVA_KEK_PREVIOUS`), and `rotate_kek` (`deneva
secrets rotate-kek`) re-wraps every data key under the current KEK, a batch per
transaction, the rows staying readable meanwhile. Rows sealed before migration 0007
(`kek_id` NULL: the wrap bound to nothing, both tokens to the same data) still open,
under any KEK of the keyring, and `rotate_kek` re-seals them in the current format.

Plaintext tokens exist only in memory, for the call that needs them, and never reach
logs or responses.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from deneva.accounts import account_id_problem
from deneva.db import Connection, Database
from deneva.errors import DenevaError
from deneva.sql import query
from deneva.tenants import tenant_by_name

PLATFORMS = ("google", "meta", "tiktok")
KEK_BYTES = 32
_NONCE = 12
TOKEN_FIELDS = ("refresh_token", "access_token")
CHANGED_CHANNEL = "deneva_credentials"  # NOTIFYed when a credential's tokens change
ROTATION_BATCH = 500
_CLAIM = query("credentials_claim")
_LOCK = query("credentials_lock")
_CONNECT = query("credentials_connect")
_LOAD = query("credentials_load")
_STORE_TOKENS = query("credentials_store_tokens")
_AUDIT_CONNECTED = query("credentials_audit_connected")
_ROTATION_BATCH = query("credentials_rotation_batch")
_REWRAP = query("credentials_rewrap")
_NOT_UNDER = query("credentials_not_under_kek")
# Format 1 (before migration 0007): the data key's wrap and the tokens' associated data.
_V1_DEK_AAD = b"deneva:data-key:v1"


class CredentialError(DenevaError):
    """A credential cannot be stored or opened (bad input, wrong KEK, corrupted data)."""


def kek_id(kek: bytes) -> str:
    """A KEK's public name: 16 hex digits of HMAC-SHA256(kek, a fixed label)."""
    mac = hmac.HMAC(kek, hashes.SHA256())
    mac.update(b"deneva:kek-id:v1")
    return mac.finalize()[:8].hex()


@attrs.frozen(repr=False)
class Keyring:
    """The KEK new seals use (`current`, DENEVA_KEK) and older ones rows may still be
    sealed under (`previous`, DENEVA_KEK_PREVIOUS), each known by its `kek_id`."""

    current: bytes = attrs.field()
    previous: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = attrs.field(init=False, eq=False)

    @current.validator
    def _check(self, _attribute: Any, value: bytes) -> None:
        for key in (value, *self.previous):
            if len(key) != KEK_BYTES:
                raise CredentialError(f"a key-encryption key must be {KEK_BYTES} bytes, got {len(key)}")

    def __attrs_post_init__(self) -> None:
        by_id = {kek_id(key): key for key in reversed((self.current, *self.previous))}
        object.__setattr__(self, "_by_id", by_id)

    @property
    def current_id(self) -> str:
        return kek_id(self.current)

    def by_id(self, name: str) -> bytes | None:
        return self._by_id.get(name)

    def all(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)

    def __repr__(self) -> str:
        previous = ", ".join(kek_id(key) for key in self.previous)
        return f"Keyring(current={self.current_id}, previous=[{previous}])"


@attrs.frozen
class CredentialRow:
    """A credential's row: what its ciphertexts are bound to."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    platform: str
    account_id: str

    @classmethod
    def from_row(cls, row: Any) -> CredentialRow:
        """From a `platform_credentials` row (its id and identity columns)."""
        return cls(row["id"], row["tenant_id"], row["platform"], row["account_id"])

    def describe(self) -> str:
        return f"{self.platform} credential for account {self.account_id}"

    def wrap_aad(self, key_id: str) -> bytes:
        return f"deneva:data-key:v2|{key_id}|{self.tenant_id}|{self.id}".encode()

    def token_aad(self, field: str) -> bytes:
        where = f"{self.tenant_id}|{self.id}|{self.platform}|{self.account_id}"
        return f"deneva:credential:v2|{field}|{where}".encode()

    def v1_token_aad(self) -> bytes:
        return f"deneva:credential:v1|{self.tenant_id}|{self.platform}|{self.account_id}".encode()


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


@attrs.frozen
class SealedCredential:
    wrapped_key: bytes
    kek_id: str | None  # None: sealed before migration 0007 (format 1)
    refresh_token_ct: bytes | None
    access_token_ct: bytes | None

    @classmethod
    def from_row(cls, row: Any) -> SealedCredential:
        """From a `platform_credentials` row (its four sealing columns)."""

        def blob(value: Any) -> bytes | None:
            return None if value is None else bytes(value)

        return cls(
            bytes(row["wrapped_key"]),
            row["kek_id"],
            blob(row["refresh_token_ct"]),
            blob(row["access_token_ct"]),
        )

    def token(self, field: str) -> bytes | None:
        return self.refresh_token_ct if field == "refresh_token" else self.access_token_ct


def _expires(tokens: PlainTokens) -> datetime | None:
    at = tokens.access_token_expires_at
    return None if at is None else datetime.fromtimestamp(at, UTC)


def _seal_with(
    keys: Keyring, row: CredentialRow, data_key: bytes, tokens: dict[str, str | None]
) -> SealedCredential:
    key_id = keys.current_id
    sealed = {
        field: None if value is None else _seal(data_key, value.encode(), row.token_aad(field))
        for field, value in tokens.items()
    }
    wrapped = _seal(keys.current, data_key, row.wrap_aad(key_id))
    return SealedCredential(wrapped, key_id, sealed["refresh_token"], sealed["access_token"])


def seal_tokens(keys: Keyring, row: CredentialRow, tokens: PlainTokens) -> SealedCredential:
    """The row's tokens sealed under a fresh data key, wrapped by the current KEK."""
    data_key = AESGCM.generate_key(bit_length=256)
    plain = {"refresh_token": tokens.refresh_token, "access_token": tokens.access_token}
    return _seal_with(keys, row, data_key, plain)


def open_data_key(keys: Keyring, row: CredentialRow, sealed: SealedCredential) -> bytes:
    """The row's data key, unwrapped by the KEK that wrapped it (format 1: whichever
    KEK of the keyring opens it)."""
    what = row.describe()
    if sealed.kek_id is None:
        for kek in keys.all():
            try:
                return _open(kek, sealed.wrapped_key, _V1_DEK_AAD, what)
            except CredentialError:
                continue
        raise CredentialError(f"{what}: cannot decrypt (wrong DENEVA_KEK or corrupted data)")
    wrapping = keys.by_id(sealed.kek_id)
    if wrapping is None:
        raise CredentialError(
            f"{what}: cannot decrypt: sealed under key-encryption key {sealed.kek_id}, which is "
            f"neither DENEVA_KEK ({keys.current_id}) nor DENEVA_KEK_PREVIOUS (a wrong DENEVA_KEK?)"
        )
    return _open(wrapping, sealed.wrapped_key, row.wrap_aad(sealed.kek_id), what)


def _open_tokens_with(data_key: bytes, row: CredentialRow, sealed: SealedCredential) -> dict[str, str | None]:
    what = row.describe()

    def aad(field: str) -> bytes:
        return row.v1_token_aad() if sealed.kek_id is None else row.token_aad(field)

    opened: dict[str, str | None] = {}
    for field in TOKEN_FIELDS:
        ct = sealed.token(field)
        opened[field] = None if ct is None else _open(data_key, ct, aad(field), what).decode()
    return opened


def open_tokens(
    keys: Keyring, row: CredentialRow, sealed: SealedCredential, expires_at: float | None = None
) -> PlainTokens:
    opened = _open_tokens_with(open_data_key(keys, row, sealed), row, sealed)
    return PlainTokens(opened["refresh_token"], opened["access_token"], expires_at)


def rewrap(keys: Keyring, row: CredentialRow, sealed: SealedCredential) -> SealedCredential | None:
    """The row sealed under the current KEK, its data key kept (format 1: its tokens
    re-sealed in the current format too); None when it is already."""
    if sealed.kek_id == keys.current_id:
        return None
    data_key = open_data_key(keys, row, sealed)
    if sealed.kek_id is None:
        return _seal_with(keys, row, data_key, _open_tokens_with(data_key, row, sealed))
    wrapped = _seal(keys.current, data_key, row.wrap_aad(keys.current_id))
    return attrs.evolve(sealed, wrapped_key=wrapped, kek_id=keys.current_id)


def check_connect_input(platform: str, account_id: str, tokens: PlainTokens) -> None:
    if platform not in PLATFORMS:
        raise CredentialError(f"PLATFORM: expected one of {', '.join(PLATFORMS)}, got {platform!r}")
    what = account_id_problem(platform, account_id)
    if what is not None:  # as the MCP tools' accountId takes it, so it can always be named
        raise CredentialError(f"--account: expected {what}, got {account_id!r}")
    if platform == "google" and not tokens.refresh_token:
        raise CredentialError("google: a refresh token is required (--token-kind refresh)")
    if platform in ("meta", "tiktok") and not tokens.access_token:
        raise CredentialError(f"{platform}: an access token is required (--token-kind access)")
    for token in (tokens.refresh_token, tokens.access_token):
        if token is not None and (not token.strip() or len(token) > 4096 or any(c.isspace() for c in token)):
            raise CredentialError("token: expected one line of up to 4096 non-space characters")


async def store_credential(
    conn: Connection,
    keys: Keyring,
    tenant_name: str,
    platform: str,
    account_id: str,
    tokens: PlainTokens,
    *,
    login_customer_id: str | None = None,
    actor: str = "cli",
) -> dict[str, Any]:
    """Insert or replace a tenant's credential for one account (the row becomes healthy,
    and a token refresh under way for it will not write over the new tokens). In a
    transaction: the row is claimed first, so the tokens are sealed bound to its id.
    `login_customer_id`: the Google manager account it is reached through, if any;
    `actor`: who connected it, for the audit log."""
    check_connect_input(platform, account_id, tokens)
    if not conn.is_in_transaction():
        raise CredentialError("store_credential: run it in a transaction")
    tenant = await tenant_by_name(conn, tenant_name)
    credential_id = await conn.fetchval(_CLAIM, tenant.id, platform, account_id)
    inserted = credential_id is not None
    if credential_id is None:
        credential_id = await conn.fetchval(_LOCK, tenant.id, platform, account_id)
    row = CredentialRow(credential_id, tenant.id, platform, account_id)
    sealed = seal_tokens(keys, row, tokens)
    await conn.execute(
        _CONNECT,
        row.id,
        sealed.wrapped_key,
        sealed.kek_id,
        sealed.refresh_token_ct,
        sealed.access_token_ct,
        _expires(tokens),
        inserted,
        login_customer_id,
    )
    await conn.execute(_AUDIT_CONNECTED, tenant.id, actor, {"platform": platform, "account_id": account_id})
    return {
        "id": str(row.id),
        "tenant": tenant.name,
        "platform": platform,
        "account": account_id,
        "new": inserted,
    }


@attrs.frozen
class StoredCredential:
    """A credential as read, with the version a later token write must match."""

    row: CredentialRow
    sealed: SealedCredential
    access_token_expires_at: float | None
    version: int
    login_customer_id: str | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.row.id


async def load_credential(
    conn: Connection, tenant_id: uuid.UUID, platform: str, account_id: str
) -> StoredCredential | None:
    row = await conn.fetchrow(_LOAD, tenant_id, platform, account_id)
    if row is None:
        return None
    expires = row["access_token_expires_at"]
    return StoredCredential(
        CredentialRow(row["id"], tenant_id, platform, account_id),
        SealedCredential.from_row(row),
        None if expires is None else expires.timestamp(),
        row["token_version"],
        row["login_customer_id"],
    )


async def store_tokens(
    conn: Connection,
    keys: Keyring,
    row: CredentialRow,
    tokens: PlainTokens,
    *,
    expected_version: int,
    lease_owner: str = "",
) -> int | None:
    """Replace a credential's tokens (after a refresh), sealed under a fresh data key, only
    if the credential is still at `expected_version` (compare-and-set: a reconnect since
    it was read wins). Gives up `lease_owner`'s refresh lease. The new version, or None
    when the credential changed meanwhile (nothing written)."""
    sealed = seal_tokens(keys, row, tokens)
    version = await conn.fetchval(
        _STORE_TOKENS,
        row.id,
        sealed.wrapped_key,
        sealed.refresh_token_ct,
        sealed.access_token_ct,
        _expires(tokens),
        expected_version,
        lease_owner,
        sealed.kek_id,
    )
    return None if version is None else int(version)


@attrs.frozen
class Rotation:
    """What `rotate_kek` did: rows now under the current KEK (`rewrapped`, of which
    `reformatted` were sealed before migration 0007), rows no KEK of the keyring opens
    (`unreadable`, left as they are), and rows still under another KEK once it was done
    (`remaining`: those, and any a daemon without the current KEK wrote meanwhile)."""

    kek_id: str
    rewrapped: int
    reformatted: int
    unreadable: tuple[uuid.UUID, ...]
    remaining: int


async def rotate_kek(
    db: Database,
    keys: Keyring,
    *,
    batch: int = ROTATION_BATCH,
    after_batch: Callable[[int], Awaitable[None]] | None = None,
) -> Rotation:
    """Re-wrap every credential's data key under `keys.current`, `batch` rows per
    transaction (each row locked for its batch's transaction only, so token refreshes
    wait at most that long); `after_batch(rewrapped so far)` runs between batches."""
    target = keys.current_id
    after = uuid.UUID(int=0)
    rewrapped = reformatted = 0
    unreadable: list[uuid.UUID] = []
    while True:

        async def one_batch(conn: Connection, after: uuid.UUID = after) -> tuple[int, uuid.UUID, int, int]:
            rows = await conn.fetch(_ROTATION_BATCH, target, after, batch)
            ids, wrapped, refresh, access = [], [], [], []
            legacy = 0
            for record in rows:
                row, sealed = CredentialRow.from_row(record), SealedCredential.from_row(record)
                try:
                    fresh = rewrap(keys, row, sealed)
                except CredentialError:
                    unreadable.append(row.id)
                    continue
                if fresh is None:
                    continue
                legacy += sealed.kek_id is None
                ids.append(row.id)
                wrapped.append(fresh.wrapped_key)
                refresh.append(fresh.refresh_token_ct)
                access.append(fresh.access_token_ct)
            if ids:
                await conn.execute(_REWRAP, target, ids, wrapped, refresh, access)
            last = rows[-1]["id"] if rows else after
            return len(rows), last, len(ids), legacy

        seen, after, done, legacy = await db.transaction(one_batch)
        rewrapped += done
        reformatted += legacy
        if seen < batch:
            break
        if after_batch is not None:
            await after_batch(rewrapped)
    remaining = int(await db.fetchval(_NOT_UNDER, target))
    return Rotation(target, rewrapped, reformatted, tuple(unreadable), remaining)


def _grant_aad(flow_id: uuid.UUID, part: str) -> bytes:
    return f"deneva:connect-grant:v1|{part}|{flow_id}".encode()


def seal_grant(keys: Keyring, flow_id: uuid.UUID, tokens: PlainTokens) -> tuple[bytes, str, bytes]:
    """A browser connect's grant, held between the callback and the account pick: sealed
    as a credential is (a fresh data key wrapped by the current KEK), bound to its flow.
    (wrapped data key, KEK id, sealed tokens)."""
    data_key = AESGCM.generate_key(bit_length=256)
    plain = {
        "refresh_token": tokens.refresh_token,
        "access_token": tokens.access_token,
        "expires_at": tokens.access_token_expires_at,
    }
    sealed = _seal(data_key, json.dumps(plain).encode(), _grant_aad(flow_id, "tokens"))
    return _seal(keys.current, data_key, _grant_aad(flow_id, keys.current_id)), keys.current_id, sealed


def open_grant(keys: Keyring, flow_id: uuid.UUID, wrapped: bytes, key_id: str, sealed: bytes) -> PlainTokens:
    what = "the connect flow's grant"
    kek = keys.by_id(key_id)
    if kek is None:
        raise CredentialError(f"{what}: sealed under key-encryption key {key_id}, not in the keyring")
    data_key = _open(kek, wrapped, _grant_aad(flow_id, key_id), what)
    plain = json.loads(_open(data_key, sealed, _grant_aad(flow_id, "tokens"), what))
    return PlainTokens(plain["refresh_token"], plain["access_token"], plain["expires_at"])
