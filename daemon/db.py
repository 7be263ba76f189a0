"""The one database access layer: asyncpg on its own asyncio thread, awaited from trio.

Why a thread and not trio-asyncio: measured here (`deneva bench bridge`, see
docs/architecture.md) the thread bridge does about twice trio-asyncio's round trips/s
with 8 concurrent callers, and it needs no asyncio context in the calling trio task,
so fixtures, tests under MockClock and actors all call it the same way.

Each call to `Database.run`, `.transaction`, `.tenant_transaction` or one of the
one-statement helpers is one crossing: group the queries of a unit of work (claim a
batch, complete a batch, a transaction) in one function and run it once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar

import asyncpg
import outcome
import trio

from deneva.backoff import Backoff
from deneva.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    QueryError,
    TransactionConflict,
    UniqueViolation,
)
from deneva.sql import query

log = logging.getLogger("deneva.db")

T = TypeVar("T")
Connection: TypeAlias = asyncpg.Connection
Record: TypeAlias = asyncpg.Record

APP_ROLE = "deneva_app"
SYSTEM_ROLE = "deneva_system"

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    # asyncpg's protocol can trip over a connection killed mid-operation (seen under load).
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.OperatorInterventionError,
)


def translate_error(exc: BaseException) -> BaseException:
    """Map asyncpg/OS errors to the daemon's typed database errors."""
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return UniqueViolation(str(exc))
    if isinstance(
        exc,
        asyncpg.exceptions.InvalidAuthorizationSpecificationError | asyncpg.exceptions.InvalidPasswordError,
    ):
        return DatabaseUnavailable(f"authentication failed: {exc}")
    if isinstance(exc, asyncpg.exceptions.InvalidCatalogNameError):
        return DatabaseUnavailable(f"database does not exist: {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"database unreachable: {type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", "") or ""
        if sqlstate.startswith("40") or sqlstate == "55P03":
            return TransactionConflict(f"{exc} (SQLSTATE {sqlstate})")
        return QueryError(f"{exc} (SQLSTATE {sqlstate})")
    return exc


_TENANT_BEGIN = (
    "BEGIN; SELECT set_config('role', '{role}', true), set_config('deneva.tenant_id', '{tenant}', true)"
)


def _uuid_literal(tenant_id: str) -> str:
    try:
        return str(uuid.UUID(str(tenant_id)))
    except ValueError:
        raise QueryError(f"tenant id {str(tenant_id)[:40]!r} is not a UUID") from None


RECONNECT_BACKOFF = Backoff(base_s=0.1, factor=2.0, max_s=5.0, jitter=0.25)
# Delivered by `Database.listen(report_loss=True)` when its connection drops.
LISTEN_LOST = "\x00lost"


class _Outbox:
    """Callbacks for one trio run from the asyncio thread, delivered in batches: one
    wake-up of the trio thread for however many results finish meanwhile."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._armed = False

    def post(self, fn: Callable[[], None]) -> None:  # asyncio thread
        self._queue.append(fn)
        if not self._armed:
            self._armed = True
            try:
                self._token.run_sync_soon(self._deliver)
            except trio.RunFinishedError:
                self._queue.clear()

    def _deliver(self) -> None:  # trio thread
        # Disarm first: whatever is posted from now on either is seen below or re-arms.
        self._armed = False
        queue = self._queue
        while queue:
            queue.popleft()()


class AsyncioThread:
    """One asyncio event loop on a daemon thread; trio tasks await coroutines on it.

    Crossings are batched both ways: calls submitted while the loop has not yet picked
    up the previous ones share its wake-up, and results that finish together go back
    to trio with one wake-up (each is a socket write and a GIL hand-over).
    """

    # Calls under way across all bridges; a test clock reads it so virtual time
    # does not jump while real database work is in flight (tests/conftest.py).
    in_flight = 0

    def __init__(self, name: str = "deneva-db") -> None:
        self._loop = asyncio.SelectorEventLoop()
        self._inbox: collections.deque[Callable[[], None]] = collections.deque()
        self._inbox_armed = False
        self._outboxes: dict[trio.lowlevel.TrioToken, _Outbox] = {}
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def _submit(self, fn: Callable[[], None]) -> None:  # trio thread
        self._inbox.append(fn)
        if not self._inbox_armed:
            self._inbox_armed = True
            self._loop.call_soon_threadsafe(self._take_inbox)

    def _take_inbox(self) -> None:  # asyncio thread
        self._inbox_armed = False  # first: see _Outbox._deliver
        inbox = self._inbox
        while inbox:
            inbox.popleft()()

    def _outbox(self, token: trio.lowlevel.TrioToken) -> _Outbox:
        box = self._outboxes.get(token)
        if box is None:
            box = self._outboxes[token] = _Outbox(token)
        return box

    async def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """Run `fn(*args)` on the asyncio loop and await its result: one crossing.

        On trio cancellation the caller leaves at once and the asyncio task is
        cancelled behind it (asyncpg rolls back and returns the connection): a
        cancel must never wait on a server that stopped answering.
        """
        outbox = self._outbox(trio.lowlevel.current_trio_token())
        task = trio.lowlevel.current_task()
        aio_task: list[asyncio.Task[T]] = []
        settled = False

        def finish(done: asyncio.Task[T]) -> None:
            nonlocal settled
            if settled:
                return  # the caller was cancelled and has gone
            settled = True
            AsyncioThread.in_flight -= 1
            if done.cancelled():
                trio.lowlevel.reschedule(task, outcome.Error(DatabaseUnavailable("database call cancelled")))
                return
            exc = done.exception()
            if exc is not None:
                trio.lowlevel.reschedule(task, outcome.Error(translate_error(exc)))
            else:
                trio.lowlevel.reschedule(task, outcome.Value(done.result()))

        def on_done(done: asyncio.Task[T]) -> None:
            outbox.post(lambda: finish(done))

        def spawn() -> None:
            created = self._loop.create_task(fn(*args))
            aio_task.append(created)
            created.add_done_callback(on_done)

        AsyncioThread.in_flight += 1
        self._submit(spawn)

        def abort(_raise_cancel: Callable[[], Any]) -> trio.lowlevel.Abort:
            nonlocal settled
            settled = True
            AsyncioThread.in_flight -= 1

            def cancel() -> None:
                if aio_task:
                    aio_task[0].cancel()

            self._submit(cancel)
            return trio.lowlevel.Abort.SUCCEEDED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


async def init_connection(conn: Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _reset_for(role: str | None) -> Callable[[Connection], Coroutine[Any, Any, None]]:
    """Pool release: asyncpg's own reset (advisory locks, cursors, LISTEN, session settings
    such as deneva.tenant_id), then the pool's role again, in one round trip: whatever a
    caller SET or RESET on a connection, the next caller gets it as a new one."""
    role_sql = "RESET ROLE" if role is None else f'SET ROLE "{role}"'

    async def reset(conn: Connection) -> None:
        await conn.execute(f"{conn.get_reset_query()}\n{role_sql};")

    return reset


_LOGIN_RIGHTS = query("db_login_rights")
_POOLED_ROLE = query("db_pooled_role")


class Database:
    """A pool of asyncpg connections that run as the system role (RLS policies apply).

    The pool's login should be a role that row-level security binds whatever it does
    (`check_login`): a member of deneva_system, not a superuser, not the tables' owner.
    """

    def __init__(
        self,
        bridge: AsyncioThread,
        pool: asyncpg.Pool,
        dsn: str,
        role: str | None,
        direct_dsn: str | None = None,
    ) -> None:
        self._bridge = bridge
        self._pool = pool
        self._role = role
        self._releasing: set[asyncio.Task[None]] = set()
        self.dsn = dsn
        # LISTEN and the upkeep connection hold a session of their own: behind a
        # transaction pooler they go straight to Postgres through this URL.
        self.direct_dsn = direct_dsn or dsn
        # Server pids of this pool's connections: LISTEN can tell our own NOTIFYs apart.
        self.own_pids: set[int] = set()
        # The upkeep connection (`run_dedicated`), outside the pool; asyncio side only.
        self._init: Callable[[Connection], Awaitable[None]] | None = None
        self._upkeep: Connection | None = None
        self._upkeep_lock: asyncio.Lock | None = None
        self._connect_timeout = 5.0

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        role: str | None = SYSTEM_ROLE,
        connect_timeout: float = 5.0,
        command_timeout: float | None = 60.0,
        direct_dsn: str | None = None,
        statement_cache_size: int = 100,
    ) -> Database:
        bridge = AsyncioThread()
        own_pids: set[int] = set()

        async def init(conn: Connection) -> None:
            await init_connection(conn)
            if role is not None:
                await conn.execute(f'SET ROLE "{role}"')
            own_pids.add(conn.get_server_pid())

        async def create() -> asyncpg.Pool:
            return await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                init=init,
                reset=_reset_for(role),
                timeout=connect_timeout,
                command_timeout=command_timeout,
                statement_cache_size=statement_cache_size,
                server_settings={"application_name": "deneva"},
            )

        try:
            pool = await bridge.call(create)
        except BaseException:
            bridge.stop()
            raise
        database = cls(bridge, pool, dsn, role, direct_dsn)
        database.own_pids = own_pids
        database._init = init
        database._connect_timeout = connect_timeout
        return database

    @property
    def bridge(self) -> AsyncioThread:
        return self._bridge

    async def check_login(self, setting: str) -> str:
        """Refuse (ConfigError naming `setting`) a pool whose login could step around
        row-level security: a superuser, a role with BYPASSRLS, or one that can act as the
        owner of the tables (`SET ROLE` or `RESET ROLE` would then reach it). The login."""
        row = await self.fetchrow(_LOGIN_RIGHTS)
        assert row is not None
        login, bypassing, owners = row["login"], list(row["bypassing"]), list(row["owners"])
        if bypassing or owners:
            if login in bypassing:
                reason = "is a superuser or has BYPASSRLS, which bypasses row-level security"
            elif bypassing:
                reason = f"can act as {', '.join(bypassing)}, which bypasses row-level security"
            elif login in owners:
                reason = "is the owner of the tables, which can switch row-level security off"
            else:
                reason = f"can act as {', '.join(owners)}, the owner of the tables"
            raise ConfigError(
                f"{setting}: the pool logs in as {login!r}, which {reason}; it must log in as a role "
                "that is only a member of deneva_system (see docs/deploy-systemd.md, An external Postgres)"
            )
        return str(login)

    async def check_pooled_role(self, setting: str) -> None:
        """Behind a transaction pooler, the pool's `SET ROLE` lasts only as long as the
        server connection it ran on serves this client: every server connection must start
        as deneva_system by itself, so the login needs that role as its default (ConfigError
        naming `setting` otherwise, with the statement that sets it)."""
        row = await self.fetchrow(_POOLED_ROLE)
        assert row is not None
        if not row["ok"]:
            login = row["login"]
            raise ConfigError(
                f"{setting}: with transaction pooling every server connection the pooler opens must "
                f'start as {SYSTEM_ROLE}; as the schema\'s owner run: ALTER ROLE "{login}" SET role = '
                f"'{SYSTEM_ROLE}' (see docs/deploy-systemd.md, Behind PgBouncer)"
            )

    async def close(self) -> None:
        pool = self._pool

        async def close_pool() -> None:
            if self._upkeep is not None:
                await _close_quietly(self._upkeep)
                self._upkeep = None
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

        try:
            with trio.CancelScope(shield=True):
                await self._bridge.call(close_pool)
        finally:
            self._bridge.stop()

    async def _lend(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` on a pooled connection (asyncio side). Once it succeeded, its
        answer goes back at once and the connection's release (the reset: one more round
        trip) runs behind it, so no caller waits for it; the connection is lent again only
        once it is reset. A failed call releases before it raises."""
        pool = self._pool
        conn = await pool.acquire()
        try:
            result = await fn(conn)
        except BaseException:
            await pool.release(conn)
            raise
        release = asyncio.get_running_loop().create_task(pool.release(conn))
        self._releasing.add(release)
        release.add_done_callback(self._released)
        return result

    def _released(self, task: asyncio.Task[None]) -> None:
        self._releasing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # asyncpg terminated the connection; the pool opens a fresh one when needed.
            log.debug("a pooled connection failed its reset", extra={"error": str(task.exception())})

    async def run(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` on one pooled connection, outside a transaction."""
        return await self._bridge.call(self._lend, fn)

    async def run_dedicated(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` on this database's upkeep connection, outside the pool (opened
        on first use, as the pool's are; reopened after it broke), one call at a time: the
        engine's lease renewal and rescue use it, so that hundreds of busy workers, or a
        flood of health probes, holding every pooled connection cannot starve them."""

        async def job() -> T:
            if self._upkeep_lock is None:
                self._upkeep_lock = asyncio.Lock()
            async with self._upkeep_lock:
                conn = self._upkeep
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(
                        self.direct_dsn,
                        timeout=self._connect_timeout,
                        server_settings={"application_name": "deneva-upkeep"},
                    )
                    if self._init is not None:
                        await self._init(conn)
                    self._upkeep = conn
                try:
                    return await fn(conn)
                except (OSError, asyncpg.InterfaceError, asyncpg.ConnectionDoesNotExistError):
                    self._upkeep = None
                    await _close_quietly(conn)
                    raise

        return await self._bridge.call(job)

    async def transaction(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` in one transaction as the system role."""

        async def in_transaction(conn: Connection) -> T:
            async with conn.transaction():
                return await fn(conn)

        return await self._bridge.call(self._lend, in_transaction)

    async def tenant_transaction(self, tenant_id: str, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run `fn(conn)` in one transaction as the application role, scoped to one tenant.

        Row-level security then hides every other tenant's rows whatever SQL `fn` runs.
        """
        # BEGIN and the switch in one round trip (a simple query can hold both; it takes no
        # parameters, so the tenant id goes in as a literal, after checking it is a UUID).
        begin = _TENANT_BEGIN.format(role=APP_ROLE, tenant=_uuid_literal(tenant_id))

        async def as_tenant(conn: Connection) -> T:
            await conn.execute(begin)
            try:
                result = await fn(conn)
            except asyncio.CancelledError:
                raise  # the query may still be in flight: the pool's release rolls back
            except BaseException:
                if not conn.is_closed():
                    try:
                        await conn.execute("ROLLBACK")
                    except Exception:  # the original error matters more; release cleans up
                        pass
                raise
            await conn.execute("COMMIT")
            return result

        return await self._bridge.call(self._lend, as_tenant)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self.run(lambda conn: conn.execute(sql, *args))

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        return await self.run(lambda conn: conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Record | None:
        return await self.run(lambda conn: conn.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self.run(lambda conn: conn.fetchval(sql, *args))

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise DatabaseUnavailable unless a trivial query answers within `timeout` s."""

        async def probe() -> None:
            async with self._pool.acquire(timeout=timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout)

        await self._bridge.call(lambda: asyncio.wait_for(probe(), timeout))

    @asynccontextmanager
    async def listen(
        self,
        *channels: str,
        buffer: int = 1024,
        skip_own: bool | Collection[str] = False,
        report_loss: bool = False,
    ) -> AsyncIterator[trio.MemoryReceiveChannel[tuple[str, str]]]:
        """Yield a channel of (channel, payload) notifications from LISTEN.

        The connection is re-established when it drops; after every (re)connect a
        `(channel, "")` message is delivered so consumers re-check what they may have
        missed (polling stays the safety net). With `report_loss`, a dropped connection
        is delivered as `(channel, LISTEN_LOST)` first, for consumers whose state is only
        valid while they hear every notification. With `skip_own` (True, or the channels
        it applies to), notifications sent from this pool's own connections are dropped
        (the process knows already).
        """
        own = frozenset(channels if skip_own is True else () if skip_own is False else skip_own)
        send, receive = trio.open_memory_channel[tuple[str, str]](buffer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen_loop, channels, send, own, report_loss)
            try:
                yield receive
            finally:
                nursery.cancel_scope.cancel()

    async def _listen_loop(
        self,
        channels: tuple[str, ...],
        send: trio.MemorySendChannel[tuple[str, str]],
        skip_own: frozenset[str],
        report_loss: bool = False,
    ) -> None:
        token = trio.lowlevel.current_trio_token()
        dsn = self.direct_dsn
        failures = 0
        while True:
            lost = trio.Event()

            def deliver(channel: str, payload: str) -> None:
                try:
                    send.send_nowait((channel, payload))
                except trio.WouldBlock:
                    pass  # the consumer is behind; it polls anyway
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

            def on_notify(_conn: Any, pid: int, channel: str, payload: str) -> None:
                if channel in skip_own and pid in self.own_pids:
                    return
                try:
                    token.run_sync_soon(deliver, channel, payload)
                except trio.RunFinishedError:
                    pass

            def on_lost(_conn: Any, lost: trio.Event = lost) -> None:
                try:
                    token.run_sync_soon(lost.set)
                except trio.RunFinishedError:
                    pass

            async def connect() -> Connection:
                conn = await asyncpg.connect(
                    dsn, timeout=5, server_settings={"application_name": "deneva-listen"}
                )
                if self._role is not None:
                    await conn.execute(f'SET ROLE "{self._role}"')
                conn.add_termination_listener(on_lost)
                for channel in channels:
                    await conn.add_listener(channel, on_notify)
                return conn

            try:
                conn = await self._bridge.call(connect)
            except DatabaseError as exc:
                failures += 1
                delay = RECONNECT_BACKOFF.delay(failures)
                log.warning(
                    "listen connection failed; retrying",
                    extra={"error": str(exc), "retry_s": round(delay, 2)},
                )
                await trio.sleep(delay)
                continue
            failures = 0
            try:
                for channel in channels:
                    deliver(channel, "")
                await lost.wait()
                log.warning("listen connection lost; reconnecting")
                if report_loss:
                    for channel in channels:
                        deliver(channel, LISTEN_LOST)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await self._bridge.call(_close_quietly, conn)


async def _close_quietly(conn: Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 2)
    except Exception:
        conn.terminate()


async def connect_once(dsn: str, timeout: float = 5.0) -> tuple[AsyncioThread, Connection]:
    """A single owner connection (migrations, admin commands); caller closes both."""
    bridge = AsyncioThread()

    async def connect() -> Connection:
        conn = await asyncpg.connect(
            dsn, timeout=timeout, server_settings={"application_name": "deneva-admin"}
        )
        await init_connection(conn)
        return conn

    try:
        return bridge, await bridge.call(connect)
    except BaseException:
        bridge.stop()
        raise
