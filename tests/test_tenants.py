"""Tenants and API keys: hashed at rest, shown once, revocation takes effect at once."""

from __future__ import annotations

import pytest

from deneva import tenants
from deneva.db import Database


async def test_key_authenticates_its_tenant_until_revoked(db: Database) -> None:
    acme = await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    key = await db.transaction(lambda c: tenants.create_key(c, "acme", "laptop"))
    assert key.plaintext.startswith(f"dnv_{key.prefix}_") and "***" in repr(key)
    assert await db.run(lambda c: tenants.authenticate(c, key.plaintext)) == acme.id
    stored = await db.fetchrow("SELECT key_hash, prefix FROM api_keys")
    assert stored is not None and key.plaintext.encode() not in bytes(stored["key_hash"])
    await db.transaction(lambda c: tenants.revoke_key(c, key.prefix))
    assert await db.run(lambda c: tenants.authenticate(c, key.plaintext)) is None
    events = [r["event_type"] for r in await db.fetch("SELECT event_type FROM audit_log ORDER BY id")]
    assert events == ["api_key.created", "api_key.revoked"]


@pytest.mark.parametrize(
    "candidate",
    ["", "nonsense", "dnv_zzzzzzzz_abcdefghijklmnopqrstuvwx", "dnv_00000000_abcdefghijklmnopqrstuvwxyz"],
)
async def test_malformed_or_unknown_keys_do_not_authenticate(db: Database, candidate: str) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    await db.transaction(lambda c: tenants.create_key(c, "acme"))
    assert await db.run(lambda c: tenants.authenticate(c, candidate)) is None


async def test_a_key_with_the_right_prefix_but_wrong_secret_is_refused(db: Database) -> None:
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    key = await db.transaction(lambda c: tenants.create_key(c, "acme"))
    forged = f"dnv_{key.prefix}_{'A' * 43}"
    assert await db.run(lambda c: tenants.authenticate(c, forged)) is None


async def test_bad_names_and_duplicates_are_named(db: Database) -> None:
    with pytest.raises(tenants.TenantError, match="tenant name 'Has Space'"):
        await db.transaction(lambda c: tenants.add_tenant(c, "Has Space"))
    await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    with pytest.raises(tenants.TenantError, match="already exists"):
        await db.transaction(lambda c: tenants.add_tenant(c, "acme"))
    with pytest.raises(tenants.TenantError, match="no tenant named 'ghost'"):
        await db.transaction(lambda c: tenants.create_key(c, "ghost"))
    with pytest.raises(tenants.TenantError, match="no API key with prefix"):
        await db.transaction(lambda c: tenants.revoke_key(c, "deadbeef"))


async def test_a_tenant_name_with_a_trailing_newline_is_refused(db: Database) -> None:
    # `$` matches before a final "\n": the name would be stored with it.
    with pytest.raises(tenants.TenantError, match=r"tenant name 'acme\\n'"):
        await db.transaction(lambda c: tenants.add_tenant(c, "acme\n"))
    assert await db.fetchval("SELECT count(*) FROM tenants") == 0
