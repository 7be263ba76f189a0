"""Plain-SQL migrations: `sql/migrations/NNNN_name.sql`, applied in order, once each.

Everything happens in one transaction under a transaction-scoped advisory lock, so
concurrent starts (two replicas, a CLI and a daemon) apply each file exactly once.
Each applied file is recorded with its SHA-256; an applied file that was edited
afterwards stops start-up with a message naming it. The environment guard (seed 003)
runs first: a database migrated by one DENEVA_ENV is never touched by another.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from importlib import resources

import attrs
import trio

from deneva.db import Connection, Record, connect_once
from deneva.errors import EnvironmentMismatch, MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x64656E657661  # "deneva"

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS deneva_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS deneva_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
"""


@attrs.frozen
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


def load_migrations() -> list[Migration]:
    folder = resources.files("deneva.sql").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name}: name must look like 0001_some_name.sql")
        raw = entry.read_bytes()
        found.append(Migration(int(match[1]), match[2], raw.decode("utf-8"), hashlib.sha256(raw).hexdigest()))
    found.sort(key=lambda m: m.version)
    for before, after in itertools.pairwise(found):
        if before.version == after.version:
            raise MigrationError(f"migrations {before.filename} and {after.filename} share a number")
    return found


@attrs.frozen
class MigrationReport:
    applied: tuple[str, ...]
    current_version: int


async def migrate(conn: Connection, env: str, migrations: list[Migration]) -> MigrationReport:
    """Apply pending migrations on an owner connection (asyncio side: one crossing)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_BOOTSTRAP)
        await conn.execute(
            "INSERT INTO deneva_meta (key, value) VALUES ('env', $1) ON CONFLICT (key) DO NOTHING", env
        )
        rows = await _check_applied(conn, env, migrations)
        done = {row["version"] for row in rows}
        applied = []
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                await conn.execute(migration.sql)
            except Exception as exc:
                raise MigrationError(f"migration {migration.filename} failed: {exc}") from exc
            await conn.execute(
                "INSERT INTO deneva_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(migration.filename)
        current = max([m.version for m in migrations], default=0)
        return MigrationReport(tuple(applied), current)


async def _check_applied(conn: Connection, env: str, migrations: list[Migration]) -> list[Record]:
    """The applied migrations, once the environment guard and their checksums pass."""
    owner_env = await conn.fetchval("SELECT value FROM deneva_meta WHERE key = 'env'")
    if owner_env != env:
        raise EnvironmentMismatch(
            f"DENEVA_ENV: this database belongs to environment {owner_env!r}, "
            f"but this daemon runs as {env!r}; refusing to touch it"
        )
    rows: list[Record] = await conn.fetch(
        "SELECT version, name, checksum FROM deneva_migrations ORDER BY version"
    )
    known = {m.version: m for m in migrations}
    for row in rows:
        mine = known.get(row["version"])
        filename = f"{row['version']:04d}_{row['name']}.sql"
        if mine is None:
            raise MigrationError(
                f"migration {filename} is applied to the database but missing here "
                "(is this an older deneva than the database?)"
            )
        if mine.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {filename} was edited after it was applied (checksum differs); "
                "restore the file and put the change in a new migration"
            )
    return rows


async def check_current(conn: Connection, env: str, migrations: list[Migration]) -> None:
    """For a process that does not migrate (no DENEVA_MIGRATE_DATABASE_URL): the database
    belongs to `env` and has every migration applied, unedited (asyncio side; read-only,
    the pool's role may read both tables)."""
    if not await conn.fetchval("SELECT to_regclass('deneva_meta') IS NOT NULL"):
        raise MigrationError(
            "the database is not migrated; run `deneva migrate` with DENEVA_MIGRATE_DATABASE_URL "
            "(the schema owner's login), or set it for the daemon so that it migrates at start"
        )
    rows = await _check_applied(conn, env, migrations)
    done = {row["version"] for row in rows}
    missing = [m.filename for m in migrations if m.version not in done]
    if missing:
        raise MigrationError(
            f"{len(missing)} migration(s) not applied ({', '.join(missing)}); run `deneva migrate` with "
            "DENEVA_MIGRATE_DATABASE_URL (the schema owner's login), or set it for the daemon so that "
            "it migrates at start"
        )


async def pending(conn: Connection, migrations: list[Migration]) -> list[str]:
    """Filenames not yet applied (asyncio side)."""
    exists = await conn.fetchval("SELECT to_regclass('deneva_migrations') IS NOT NULL")
    done = set()
    if exists:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM deneva_migrations")}
    return [m.filename for m in migrations if m.version not in done]


async def apply_migrations(dsn: str, env: str) -> tuple[str, ...]:
    """Migrate the database at `dsn` for environment `env` (from trio): the applied files."""
    bridge, conn = await connect_once(dsn)
    try:
        report = await bridge.call(migrate, conn, env, load_migrations())
        return report.applied
    finally:
        with trio.CancelScope(shield=True):
            await bridge.call(conn.close)
        bridge.stop()
