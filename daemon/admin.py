"""Where the daemon and the CLI connect, and how: the configured URLs, a running
daemon's embedded server (found through the state directory), or the embedded server
started just for the command and stopped after it.

Two logins (SPEC §6): the migrations run as the schema's owner (`DatabaseUrls.owner`),
the pool as a login that row-level security binds (`DatabaseUrls.app`), a member of
deneva_system only. On the embedded server deneva makes that login itself
(`pgembed.APP_LOGIN`, its password in `pg/app-password`); with an external Postgres the
operator does (docs/deploy-systemd.md). A process without the owner's URL does not
migrate: it checks that the schema is current instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
import attrs

from deneva.config import Config, env_name
from deneva.db import SYSTEM_ROLE, AsyncioThread, Database, translate_error
from deneva.errors import DenevaError
from deneva.migrations import apply_migrations, check_current, load_migrations
from deneva.pgembed import (
    APP_LOGIN,
    DATABASE,
    EmbeddedPostgres,
    StateLock,
    SyncServer,
    dsn_for,
    read_private_file,
    running_server,
)
from deneva.sql import query

T = TypeVar("T")


@attrs.frozen(repr=False)
class AppLogin:
    """The pool's login on the embedded server, made (or brought in line) by the owner."""

    role: str
    password: str

    def __repr__(self) -> str:
        return f"AppLogin({self.role}, ***)"


@attrs.frozen
class DatabaseUrls:
    """`app`: the pool's login; `owner`: the migrations' (None: this process does not
    migrate); `login`: on the embedded server, the app login to provision after migrating;
    `setting`: what to name when the app login is not one row-level security binds."""

    app: str
    owner: str | None
    login: AppLogin | None = None
    setting: str = "DENEVA_DATABASE_URL"
    # Transaction pooling (a PgBouncer): `app` is the pooler's URL, `direct` the same login
    # straight to Postgres, for LISTEN and the lease upkeep.
    pooling: str = "session"
    direct: str | None = None


EMBEDDED_LOGIN = f"the embedded Postgres's app login ({APP_LOGIN})"


def external_urls(config: Config) -> DatabaseUrls:
    assert config.database_url is not None
    return DatabaseUrls(
        config.database_url,
        config.migrate_database_url,
        pooling=config.database_pooling,
        direct=config.direct_database_url,
    )


def embedded_urls(pg: EmbeddedPostgres) -> DatabaseUrls:
    login = AppLogin(APP_LOGIN, pg.app_password())
    return DatabaseUrls(pg.app_dsn(), pg.dsn(), login, EMBEDDED_LOGIN)


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    return stored_key, hmac.digest(salted, b"Server Key", "sha256")


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for `password` (RFC 5802 and 7677, the
    format of `pg_authid.rolpassword`), so the password itself never reaches the server,
    its logs or pg_stat_activity. The password is ASCII (SASLprep leaves it as it is)."""
    salt = secrets.token_bytes(16)
    stored_key, server_key = _scram_keys(password, salt, iterations)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_matches(verifier: str | None, password: str) -> bool:
    """Whether a stored SCRAM-SHA-256 verifier is the one of `password`."""
    match = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier or "")
    if match is None:
        return False
    try:
        salt, stored, server = (base64.b64decode(match[i], validate=True) for i in (2, 3, 4))
    except ValueError:
        return False
    stored_key, server_key = _scram_keys(password, salt, int(match[1]))
    return hmac.compare_digest(stored_key, stored) and hmac.compare_digest(server_key, server)


_LOGIN_STATE = query("admin_app_login_state")
_PROVISION_LOCK = 0x64656E657661_01  # "deneva" + 1: one provisioning at a time


async def provision_login(owner_dsn: str, login: AppLogin) -> None:
    """Create the app login, or bring it in line: LOGIN, no superuser, no BYPASSRLS, no
    inherited rights (after RESET ROLE it can do nothing), a member of deneva_system, its
    password the one in its file (asyncio side; the owner is the embedded superuser, which
    reads pg_authid). A login already in line is left as it is: no catalog write, so
    concurrent starts never collide."""
    if not login.role.isidentifier():
        raise DenevaError(f"app login {login.role!r}: expected a plain role name")
    attributes = "LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION"
    conn = await asyncpg.connect(owner_dsn, timeout=10)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _PROVISION_LOCK)
            state = await conn.fetchrow(_LOGIN_STATE, login.role, SYSTEM_ROLE)
            in_line = state is not None and state["rolcanlogin"] and state["member"] and not state["too_much"]
            if in_line and scram_matches(state["rolpassword"], login.password):
                return
            verb = "CREATE" if state is None else "ALTER"
            verifier = scram_verifier(login.password)
            await conn.execute(f"{verb} ROLE \"{login.role}\" {attributes} PASSWORD '{verifier}'")
            if state is None or not state["member"]:
                await conn.execute(f'GRANT "{SYSTEM_ROLE}" TO "{login.role}"')
    finally:
        await conn.close()


async def prepare_database(urls: DatabaseUrls, env: str) -> tuple[str, ...]:
    """Migrate with the owner's URL, if this process has it, then provision the embedded
    server's app login (from trio): the migrations applied."""
    if urls.owner is None:
        return ()
    applied = await apply_migrations(urls.owner, env)
    if urls.login is not None:
        bridge = AsyncioThread()
        try:
            await bridge.call(provision_login, urls.owner, urls.login)
        finally:
            bridge.stop()
    return applied


async def open_pool(urls: DatabaseUrls, env: str, **pool: Any) -> Database:
    """The pool (from trio), refused unless row-level security binds its login; without
    the owner's URL, only on a schema that is current for `env`."""
    transaction_pooling = urls.pooling == "transaction"
    if transaction_pooling:
        # No prepared statement outlives its transaction behind the pooler (PgBouncer < 1.21
        # keeps none across server connections): asyncpg's statement cache is off.
        pool.setdefault("statement_cache_size", 0)
    db = await Database.open(urls.app, direct_dsn=urls.direct, **pool)
    try:
        await db.check_login(urls.setting)
        if transaction_pooling:
            await db.check_pooled_role("DENEVA_DATABASE_POOLING")
        if urls.owner is None:
            await db.run(lambda conn: check_current(conn, env, load_migrations()))
    except BaseException:
        await db.close()
        raise
    return db


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
def database_urls(config: Config) -> Iterator[DatabaseUrls]:
    """The URLs a CLI command connects with (embedded: a running daemon's server, or one
    started for the command)."""
    if config.database_url is not None:
        yield external_urls(config)
        return
    lock = StateLock(config.state_dir)
    if not lock.try_acquire():
        info = running_server(config.state_dir)
        if info is None:
            raise DenevaError(
                f"DENEVA_STATE_DIR: {config.state_dir} is in use by deneva (pid {lock.holder()}) "
                "but its database is not serving yet; try again shortly"
            )
        password = read_private_file(info.data_dir.parent / "app-password")
        login = None if password is None else AppLogin(APP_LOGIN, password)
        yield DatabaseUrls(
            dsn_for(info, user=APP_LOGIN), dsn_for(info), login, "the embedded Postgres's app login"
        )
        return
    try:
        pg = EmbeddedPostgres(config.state_dir, bin_dir=config.pg_bin, pg_user=config.pg_user)
        server = SyncServer(pg, log_file=pg.root / "postgres.log")
        server.start()
        try:
            run_async(lambda: create_database(pg.dsn("postgres"), DATABASE))
            yield embedded_urls(pg)
        finally:
            server.stop()
    finally:
        lock.release()


@contextmanager
def admin_dsn(config: Config) -> Iterator[str]:
    """The owner's URL (the benchmarks, which create and drop databases of their own):
    DENEVA_MIGRATE_DATABASE_URL, else DENEVA_DATABASE_URL, else the embedded superuser."""
    if config.database_url is not None:
        yield config.migrate_database_url or config.database_url
        return
    with database_urls(config) as urls:
        assert urls.owner is not None
        yield urls.owner


def owner_url(urls: DatabaseUrls) -> str:
    """The migrations' URL, or a one-line reason why this command cannot run without it."""
    if urls.owner is None:
        raise DenevaError(
            f"{env_name('migrate_database_url')}: not set; migrations run as the owner of the schema, "
            f"not as the pool's login ({env_name('database_url')})"
        )
    return urls.owner


def with_database(config: Config, fn: Callable[[Database], Awaitable[T]]) -> T:
    """Run `fn(db)` under trio for a CLI command, on a migrated database, with the pool's login."""
    import trio

    async def main(urls: DatabaseUrls) -> T:
        await prepare_database(urls, config.env)  # as the daemon does at start
        db = await open_pool(urls, config.env, min_size=1, max_size=4)
        try:
            return await fn(db)
        finally:
            await db.close()

    with database_urls(config) as urls:
        return trio.run(main, urls)
