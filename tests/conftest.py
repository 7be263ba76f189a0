"""Test fixtures: one embedded Postgres per test session, a fresh database per test.

The session cluster is the same embedded Postgres `make run` uses (same code, its
own state directory). Its `deneva_template` database is migrated once, and the app
login the daemon's pool uses is made as `deneva run` makes it; each test that needs a
database gets `CREATE DATABASE ... TEMPLATE deneva_template`, which takes milliseconds.
`database_url` is the owner's (superuser) URL of that database, `app_url` the app
login's, the one the `db` pool uses, as the daemon's does.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import trio.testing

from deneva.admin import AppLogin, provision_login
from deneva.db import AsyncioThread, Database, init_connection
from deneva.migrations import load_migrations, migrate
from deneva.pgembed import APP_LOGIN, EmbeddedPostgres, SyncServer

TEST_ENV = "test"
TEMPLATE = "deneva_template"
_counter = itertools.count()


class Cluster:
    def __init__(self, server: SyncServer) -> None:
        self.server = server
        self.pg = server.pg

    def dsn(self, database: str) -> str:
        return self.pg.dsn(database)

    def app_dsn(self, database: str) -> str:
        return self.pg.app_dsn(database)

    def admin(self, sql: str) -> None:
        async def go() -> None:
            conn = await asyncpg.connect(self.dsn("postgres"))
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(go())

    def new_database(self, template: str = TEMPLATE) -> str:
        name = f"t{os.getpid()}_{next(_counter)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name


def database_aware_mock_clock() -> trio.testing.MockClock:
    """Autojumping virtual time that holds still while a database call is in flight.

    Database work runs in real time on the bridge thread; without this, trio would see
    every task blocked and jump virtual time ahead of it. (MockClock is final, so the
    run loop's autojump hook is wrapped on the instance.)
    """
    clock = trio.testing.MockClock(autojump_threshold=0.0001)
    jump = clock._autojump

    def autojump_unless_database_busy() -> None:
        if AsyncioThread.in_flight == 0:
            jump()

    clock._autojump = autojump_unless_database_busy  # type: ignore[method-assign]
    return clock


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return database_aware_mock_clock()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("pg-session")
    pg = EmbeddedPostgres(
        state,
        settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    server = SyncServer(pg, log_file=state / "postgres.log")
    server.start()
    cluster = Cluster(server)
    try:
        cluster.admin(f'CREATE DATABASE "{TEMPLATE}"')

        async def prepare() -> None:
            conn = await asyncpg.connect(cluster.dsn(TEMPLATE))
            try:
                await init_connection(conn)
                await migrate(conn, TEST_ENV, load_migrations())
            finally:
                await conn.close()

        asyncio.run(prepare())
        asyncio.run(provision_login(cluster.dsn(TEMPLATE), AppLogin(APP_LOGIN, pg.app_password())))
        yield cluster
    finally:
        server.stop()


def as_app_login(owner_url: str) -> str:
    """The same database's URL for the app login (the embedded pgpass holds both passwords)."""
    parts = urlsplit(owner_url)
    return urlunsplit(parts._replace(netloc=f"{APP_LOGIN}@{parts.hostname or ''}"))


@pytest.fixture
def database_name(cluster: Cluster) -> str:
    """A fresh, migrated database of its own for one test."""
    return cluster.new_database()


@pytest.fixture
def database_url(cluster: Cluster, database_name: str) -> str:
    """The owner's (superuser's) URL of the test's database."""
    return cluster.dsn(database_name)


@pytest.fixture
def app_url(cluster: Cluster, database_name: str) -> str:
    """The app login's URL of the test's database: row-level security binds it."""
    return cluster.app_dsn(database_name)


@pytest.fixture
async def db(app_url: str) -> AsyncIterator[Database]:
    database = await Database.open(app_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def deneva_cmd() -> list[str]:
    return [sys.executable, "-m", "deneva"]
