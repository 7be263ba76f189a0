"""Database access for CLI commands: the configured URL, a running daemon's embedded
server (found through the state directory), or the embedded server started just for
the command and stopped after it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg

from deneva.config import Config
from deneva.db import Database, translate_error
from deneva.errors import DenevaError
from deneva.migrations import apply_migrations
from deneva.pgembed import DATABASE, EmbeddedPostgres, StateLock, SyncServer, dsn_for, running_server

T = TypeVar("T")


async def create_database(admin_dsn: str, name: str) -> None:
    """Create the application database on first boot (asyncio side)."""
    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def run_async(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run an asyncio-side database function from a CLI command, errors translated."""
    try:
        return asyncio.run(fn())
    except DenevaError:
        raise
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from None


@contextmanager
def admin_dsn(config: Config) -> Iterator[str]:
    if config.database_url is not None:
        yield config.database_url
        return
    lock = StateLock(config.state_dir)
    if not lock.try_acquire():
        info = running_server(config.state_dir)
        if info is None:
            raise DenevaError(
                f"DENEVA_STATE_DIR: {config.state_dir} is in use by deneva (pid {lock.holder()}) "
                "but its database is not serving yet; try again shortly"
            )
        yield dsn_for(info)
        return
    try:
        pg = EmbeddedPostgres(config.state_dir, bin_dir=config.pg_bin, pg_user=config.pg_user)
        server = SyncServer(pg, log_file=pg.root / "postgres.log")
        server.start()
        try:
            run_async(lambda: create_database(pg.dsn("postgres"), DATABASE))
            yield pg.dsn()
        finally:
            server.stop()
    finally:
        lock.release()


def with_database(config: Config, fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run `fn(db)` under trio for a CLI command, on a migrated database."""
    import trio

    async def main(dsn: str) -> T:
        await apply_migrations(dsn, config.env)  # as the daemon does at start
        db = await Database.open(dsn, min_size=1, max_size=4)
        try:
            return await fn(db)
        finally:
            await db.close()

    with admin_dsn(config) as dsn:
        return trio.run(main, dsn)
