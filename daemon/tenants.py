"""Tenants and their API keys.

An API key is `dnv_<prefix>_<secret>`: the prefix (8 hex characters) finds the row,
the SHA-256 of the whole key is compared in constant time. Only the hash is stored;
the key is shown once, when created. Creating or revoking a key NOTIFYs
`deneva_api_keys` with its prefix in the same transaction, so daemons that cache
what they know of a prefix (`deneva.mcp.auth`) forget it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from datetime import datetime
from typing import Any

import attrs

from deneva.db import Connection
from deneva.errors import DenevaError

_TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # fullmatch: `$` lets a "\n" through
_KEY = re.compile(r"dnv_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})")


class TenantError(DenevaError):
    """Bad tenant or key input; the message names it."""


@attrs.frozen
class Tenant:
    id: uuid.UUID
    name: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "name": self.name, "createdAt": self.created_at.isoformat()}


@attrs.frozen(repr=False)
class ActiveKey:
    """An unrevoked key's row: whose it is and the hash a presented key must match."""

    tenant_id: uuid.UUID
    key_hash: bytes

    def __repr__(self) -> str:
        return f"ActiveKey(tenant_id={self.tenant_id!r}, key_hash=***)"

    def matches(self, plaintext: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_key(plaintext.strip()))


@attrs.frozen(repr=False)
class NewKey:
    """A freshly created key: `plaintext` is shown once and never stored."""

    prefix: str
    tenant: str
    plaintext: str

    def __repr__(self) -> str:
        return f"NewKey(prefix={self.prefix!r}, tenant={self.tenant!r}, plaintext=***)"


def check_tenant_name(name: str) -> str:
    if not isinstance(name, str) or not _TENANT_NAME.fullmatch(name):
        raise TenantError(
            f"tenant name {name!r}: expected 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


KEYS_CHANNEL = "deneva_api_keys"


def hash_key(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode()).digest()


def parse_key(plaintext: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    match = _KEY.fullmatch(plaintext.strip()) if isinstance(plaintext, str) else None
    return match[1] if match else None


async def add_tenant(conn: Connection, name: str) -> Tenant:
    check_tenant_name(name)
    row = await conn.fetchrow(
        "INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
        name,
    )
    if row is None:
        raise TenantError(f"tenant {name!r} already exists")
    return Tenant(row["id"], row["name"], row["created_at"])


async def list_tenants(conn: Connection) -> list[Tenant]:
    rows = await conn.fetch("SELECT id, name, created_at FROM tenants ORDER BY name")
    return [Tenant(r["id"], r["name"], r["created_at"]) for r in rows]


async def tenant_by_name(conn: Connection, name: str) -> Tenant:
    row = await conn.fetchrow("SELECT id, name, created_at FROM tenants WHERE name = $1", name)
    if row is None:
        raise TenantError(f"no tenant named {name!r} (see `deneva tenant list`)")
    return Tenant(row["id"], row["name"], row["created_at"])


async def create_key(
    conn: Connection, tenant_name: str, label: str | None = None, *, actor: str = "cli"
) -> NewKey:
    """A new key for the tenant (audited as `actor`: the CLI, or the console's session)."""
    tenant = await tenant_by_name(conn, tenant_name)
    for _ in range(5):
        prefix = secrets.token_hex(4)
        plaintext = f"dnv_{prefix}_{secrets.token_urlsafe(32)}"
        inserted = await conn.fetchval(
            "INSERT INTO api_keys (tenant_id, prefix, key_hash, label) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (prefix) DO NOTHING RETURNING prefix",
            tenant.id,
            prefix,
            hash_key(plaintext),
            label,
        )
        if inserted:
            # Daemons may remember this prefix as unknown; this tells them (on commit) to forget.
            await conn.execute("SELECT pg_notify($1, $2)", KEYS_CHANNEL, prefix)
            await conn.execute(
                "INSERT INTO audit_log (tenant_id, event_type, actor, details) "
                "VALUES ($1, 'api_key.created', $2, $3)",
                tenant.id,
                actor,
                {"prefix": prefix},
            )
            return NewKey(prefix, tenant.name, plaintext)
    raise TenantError("could not find a free key prefix; try again")


async def revoke_key(conn: Connection, prefix: str, *, actor: str = "cli") -> str:
    prefix = prefix.removeprefix("dnv_").split("_")[0]
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = $1 RETURNING tenant_id",
        prefix,
    )
    if row is None:
        raise TenantError(f"no API key with prefix {prefix!r}")
    # Daemons cache valid keys; this tells them (on commit) to forget this one.
    await conn.execute("SELECT pg_notify($1, $2)", KEYS_CHANNEL, prefix)
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, event_type, actor, details) "
        "VALUES ($1, 'api_key.revoked', $2, $3)",
        row["tenant_id"],
        actor,
        {"prefix": prefix},
    )
    return prefix


async def active_key(conn: Connection, prefix: str) -> ActiveKey | None:
    """The unrevoked key with this prefix, if there is one."""
    row = await conn.fetchrow(
        "SELECT tenant_id, key_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL", prefix
    )
    return None if row is None else ActiveKey(row["tenant_id"], bytes(row["key_hash"]))


async def authenticate(conn: Connection, plaintext: str) -> uuid.UUID | None:
    """The tenant of a valid, unrevoked key; None otherwise (never says which part failed)."""
    prefix = parse_key(plaintext)
    if prefix is None:
        return None
    key = await active_key(conn, prefix)
    return key.tenant_id if key is not None and key.matches(plaintext) else None


async def list_keys(conn: Connection, tenant_name: str | None) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT k.prefix, t.name AS tenant, k.label, k.created_at, k.revoked_at FROM api_keys k "
        "JOIN tenants t ON t.id = k.tenant_id WHERE ($1::text IS NULL OR t.name = $1) ORDER BY k.created_at",
        tenant_name,
    )
    return [
        {
            "prefix": r["prefix"],
            "tenant": r["tenant"],
            "label": r["label"],
            "createdAt": r["created_at"].isoformat(),
            "revokedAt": None if r["revoked_at"] is None else r["revoked_at"].isoformat(),
        }
        for r in rows
    ]
