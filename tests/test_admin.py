"""deneva.admin: the embedded server's app login, made and kept in line by the owner."""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg

from deneva.admin import AppLogin, provision_login, scram_matches, scram_verifier
from tests.conftest import TEMPLATE, Cluster


def test_a_scram_verifier_matches_its_password_only() -> None:
    verifier = scram_verifier("correct horse")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert scram_matches(verifier, "correct horse")
    assert not scram_matches(verifier, "battery staple")
    assert not scram_matches(None, "correct horse") and not scram_matches("md5abc", "correct horse")


async def _state(dsn: str, role: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(
            "SELECT rolpassword, rolinherit, rolsuper, pg_has_role(oid, 'deneva_system', 'MEMBER') AS member "
            "FROM pg_authid WHERE rolname = $1",
            role,
        )
    finally:
        await conn.close()


async def _login_works(cluster: Cluster, role: str, password: str) -> str:
    pg = cluster.pg
    conn = await asyncpg.connect(
        user=role, password=password, host=str(pg.socket_dir), port=pg.port, database=TEMPLATE
    )
    try:
        return str(await conn.fetchval("SELECT session_user"))
    finally:
        await conn.close()


def test_the_app_login_is_made_then_left_alone_and_brought_back_in_line(cluster: Cluster) -> None:
    owner = cluster.dsn(TEMPLATE)
    login = AppLogin(f"dnv_login_{os.getpid()}", secrets.token_urlsafe(16))
    try:

        async def concurrently() -> None:  # several starts at once: no catalog write collides
            await asyncio.gather(*(provision_login(owner, login) for _ in range(4)))

        asyncio.run(concurrently())
        made = asyncio.run(_state(owner, login.role))
        assert made is not None and made["member"] and not made["rolinherit"] and not made["rolsuper"]
        assert asyncio.run(_login_works(cluster, login.role, login.password)) == login.role
        asyncio.run(provision_login(owner, login))
        again = asyncio.run(_state(owner, login.role))
        assert again is not None and again["rolpassword"] == made["rolpassword"]  # untouched
        cluster.admin(f'ALTER ROLE "{login.role}" INHERIT')
        cluster.admin(f'REVOKE deneva_system FROM "{login.role}"')
        moved = AppLogin(login.role, secrets.token_urlsafe(16))  # its password file was replaced
        asyncio.run(provision_login(owner, moved))
        fixed = asyncio.run(_state(owner, login.role))
        assert fixed is not None and fixed["member"] and not fixed["rolinherit"]
        assert asyncio.run(_login_works(cluster, login.role, moved.password)) == login.role
    finally:
        cluster.admin(f'DROP ROLE IF EXISTS "{login.role}"')
