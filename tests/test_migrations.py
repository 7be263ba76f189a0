"""Migrations: in order, once each, under a lock, checksummed; the environment guard."""

from __future__ import annotations

import os
import secrets
import uuid
from urllib.parse import quote

import attrs
import pytest
import trio

from deneva.db import Connection, Database, connect_once
from deneva.errors import ConfigError, EnvironmentMismatch, MigrationError
from deneva.migrations import Migration, load_migrations, migrate, pending
from tests.conftest import TEST_ENV, Cluster


async def _migrate(dsn: str, env: str, migrations: list[Migration]) -> tuple[str, ...]:
    bridge, conn = await connect_once(dsn)
    try:
        return (await bridge.call(migrate, conn, env, migrations)).applied
    finally:
        await bridge.call(conn.close)
        bridge.stop()


def test_migration_files_are_numbered_in_order() -> None:
    migrations = load_migrations()
    assert migrations, "no migrations found in the package"
    assert [m.version for m in migrations] == sorted({m.version for m in migrations})
    assert migrations[0].filename == "0001_foundation.sql"


async def test_fresh_database_gets_every_migration_once(cluster: Cluster) -> None:
    dsn = cluster.dsn(cluster.new_database(template="template0"))
    migrations = load_migrations()
    assert await _migrate(dsn, TEST_ENV, migrations) == tuple(m.filename for m in migrations)
    assert await _migrate(dsn, TEST_ENV, migrations) == ()
    owner = await Database.open(dsn, role=None, min_size=1)
    try:
        rows = await owner.fetch("SELECT version, checksum FROM deneva_migrations ORDER BY version")
        assert [(r["version"], r["checksum"]) for r in rows] == [(m.version, m.checksum) for m in migrations]
        assert await owner.run(lambda conn: pending(conn, migrations)) == []
    finally:
        await owner.close()


async def test_concurrent_migrations_apply_each_file_exactly_once(cluster: Cluster) -> None:
    dsn = cluster.dsn(cluster.new_database(template="template0"))
    migrations = load_migrations()
    results: list[tuple[str, ...]] = []

    async def one() -> None:
        results.append(await _migrate(dsn, TEST_ENV, migrations))

    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(one)
    applied = [r for r in results if r]
    assert len(applied) == 1 and len(results) == 4


async def test_an_edited_applied_migration_stops_start_up_naming_it(database_url: str) -> None:
    migrations = load_migrations()
    edited = [
        attrs.evolve(migrations[0], sql=migrations[0].sql + "\n-- edited", checksum="0" * 64),
        *migrations[1:],
    ]
    with pytest.raises(MigrationError, match="0001_foundation.sql was edited"):
        await _migrate(database_url, TEST_ENV, edited)


async def test_a_failing_migration_is_named_and_rolled_back(database_url: str) -> None:
    migrations = load_migrations()
    broken = Migration(
        9999, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();", "f" * 64
    )
    with pytest.raises(MigrationError, match="9999_broken.sql failed"):
        await _migrate(database_url, TEST_ENV, [*migrations, broken])
    owner = await Database.open(database_url, role=None, min_size=1)
    try:
        assert await owner.fetchval("SELECT to_regclass('half_done')") is None
        assert await owner.fetchval("SELECT max(version) FROM deneva_migrations") == migrations[-1].version
    finally:
        await owner.close()


async def test_database_of_another_environment_is_refused(database_url: str) -> None:
    with pytest.raises(EnvironmentMismatch, match="belongs to environment 'test'.*'production'"):
        await _migrate(database_url, "production", load_migrations())


async def test_unknown_applied_migration_is_reported(database_url: str) -> None:
    owner = await Database.open(database_url, role=None, min_size=1)
    try:
        await owner.execute(
            "INSERT INTO deneva_migrations (version, name, checksum) VALUES (9998, 'from_the_future', 'x')"
        )
    finally:
        await owner.close()
    with pytest.raises(
        MigrationError, match="9998_from_the_future.sql is applied to the database but missing here"
    ):
        await _migrate(database_url, TEST_ENV, load_migrations())


async def test_a_run_stored_with_a_3kb_key_is_rehashed_as_the_engine_hashes(cluster: Cluster) -> None:
    """Before 0006, a run could be stored with a key too large for an index (every claim
    then failed on it); 0006 stores it in the engine's hashed form, so its index builds
    and the run stays in its key's queue."""
    from deneva.engine.functions import stored_key  # the form the engine plans with

    dsn = cluster.dsn(cluster.new_database(template="template0"))
    migrations = load_migrations()
    before = [m for m in migrations if m.version < 6]
    await _migrate(dsn, TEST_ENV, before)
    noise = "".join(f"{i * 2654435761 % 2**32:08x}" for i in range(400))  # 3.2 KB, incompressible
    owner = await Database.open(dsn, role=None, min_size=1)
    try:
        await owner.execute(
            "INSERT INTO engine_runs (id, function_id, status, event, max_attempts, run_at, concurrency_key,"
            " concurrency_limit, created_at) VALUES (gen_random_uuid(), 'f', 'queued', '{}', 1, now(), $1, 1,"
            " now()), (gen_random_uuid(), 'f', 'queued', '{}', 1, now(), 'f|short', 1, now())",
            f"f|{noise}",
        )
        assert await _migrate(dsn, TEST_ENV, migrations) == tuple(
            m.filename for m in migrations[len(before) :]
        )
        keys = {r["concurrency_key"] for r in await owner.fetch("SELECT concurrency_key FROM engine_runs")}
    finally:
        await owner.close()
    assert keys == {stored_key("f", noise), "f|short"}


async def test_the_owner_of_the_tables_is_bound_by_row_level_security_too(cluster: Cluster) -> None:
    """An owner that is not a superuser (an external Postgres): after the migrations it
    sees no tenant rows, the archive function it owns still moves audit rows, and as the
    pool's login it would be refused."""
    suffix = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    owner, password, name = f"owner_{suffix}", secrets.token_urlsafe(16), f"owned_{suffix}"
    cluster.admin(f"CREATE ROLE {owner} LOGIN CREATEROLE PASSWORD '{password}'")
    cluster.admin(f'CREATE DATABASE "{name}" OWNER {owner} TEMPLATE template0')
    pg = cluster.pg
    owner_dsn = f"postgresql://{owner}:{password}@/{name}?host={quote(str(pg.socket_dir))}&port={pg.port}"
    try:
        await _migrate(owner_dsn, TEST_ENV, load_migrations())
        app = await Database.open(cluster.app_dsn(name), min_size=1)
        as_owner = await Database.open(owner_dsn, role=None, min_size=1)
        try:
            acme = await app.fetchval("INSERT INTO tenants (name) VALUES ('acme') RETURNING id")
            await app.execute(
                "INSERT INTO audit_log (tenant_id, event_type, created_at) "
                "VALUES ($1, 'old', now() - '2 years'::interval)",
                acme,
            )

            async def owner_sees(conn: Connection) -> tuple[int, int]:
                await conn.execute("SELECT set_config('deneva.tenant_id', $1, false)", str(acme))
                tenants = await conn.fetchval("SELECT count(*) FROM tenants")
                audit = await conn.fetchval("SELECT count(*) FROM audit_log")
                return int(tenants), int(audit)

            assert await as_owner.run(owner_sees) == (0, 0)
            assert await app.fetchval("SELECT count(*) FROM tenants") == 1
            assert await app.fetchval("SELECT deneva_archive_audit_log(now() - '1 year'::interval, 100)") == 1
            assert await app.fetchval("SELECT count(*) FROM audit_log_archive") == 1
            assert await app.fetchval("SELECT count(*) FROM audit_log") == 0
            with pytest.raises(ConfigError, match="is the owner of the tables"):
                await as_owner.check_login("DENEVA_DATABASE_URL")
        finally:
            await as_owner.close()
            await app.close()
    finally:
        cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cluster.admin(f"DROP ROLE IF EXISTS {owner}")
