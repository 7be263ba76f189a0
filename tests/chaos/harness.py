"""The chaos suite's harness: real `deneva run` processes against a Postgres of their own
that a test may stop, restart and kill, and the means to watch both from outside.

Reusable by any chaos case (docs/RELIABILITY.md lists them):

- `ChaosPostgres`: a dedicated cluster (initdb into a temporary directory, its own port
  and socket, run as a dedicated account when the tests run as root, as the embedded
  one is). `stop("fast" | "immediate")` is `pg_ctl stop -m ...`, `start()` brings it back
  on the same port, `terminate_backends(...)` is `pg_terminate_backend` for every
  backend of a login. Unlike the session cluster (tests/conftest.py) it keeps
  `synchronous_commit` on: an immediate shutdown must not lose a commit that was
  acknowledged, or "nothing lost" would be a lie of the test's own making.
- `ChaosDatabase` (`ChaosPostgres.new_database()`): a migrated database with the chaos
  functions' tables (tests/chaos/functions.py) and the app login; `query`/`value`/`execute`
  run as its owner and raise `DatabaseError` while the server is down (`poll` retries).
- `Fleet`: starts replicas (`deneva run` processes on that database, sharing secrets as
  a real deployment does), each with its own HTTP port, state directory, NOTIFY_SOCKET
  (READY=1 is awaited as systemd does) and `clock_offset_s`; `Replica.kill()` is SIGKILL,
  `Replica.stop()` SIGTERM and a clean exit. `Replica.send(events)` posts to /api/events.
- `poll(condition, timeout_s)`: waits for an observable condition (a query, /readyz)
  with a deadline, never a fixed sleep.
- `FULL` / `scale(short, full)`: `DENEVA_CHAOS=full` (`make chaos`) runs each case at
  its full size; `make test` runs the short versions.
- Figures (`record_figure`) are printed in a table at the end of the session
  (tests/chaos/conftest.py) and written to `$DENEVA_CHAOS_FIGURES` as JSON if set.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import attrs
import httpx
import trio

from deneva.admin import AppLogin, provision_login
from deneva.db import Database, connect_once
from deneva.errors import DatabaseError
from deneva.migrations import load_migrations, migrate
from deneva.pgembed import APP_LOGIN, EmbeddedPostgres, SyncServer, ensure_traversable, read_postmaster_pid
from deneva.secrets import init_secrets
from tests.chaos import functions

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]
CHAOS_ENV = "test"
FULL = os.environ.get("DENEVA_CHAOS", "") == "full"


def scale(short: T, full: T) -> T:
    """The full size under `make chaos` (DENEVA_CHAOS=full), the short one in `make test`."""
    return full if FULL else short


# -- polling ------------------------------------------------------------------------------


async def poll(
    condition: Callable[[], Awaitable[T]],
    timeout_s: float,
    what: str,
    *,
    every_s: float = 0.1,
) -> T:
    """Call `condition` until it returns something truthy (returned); a DatabaseError
    counts as "not yet". Fails naming `what` after `timeout_s`."""
    deadline = trio.current_time() + timeout_s
    last: object = None
    while True:
        try:
            result = await condition()
            if result:
                return result
            last = result
        except (DatabaseError, httpx.HTTPError) as exc:
            last = exc
        if trio.current_time() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what} (last: {last!r})")
        await trio.sleep(every_s)


# -- Postgres -----------------------------------------------------------------------------

StopMode = Literal["smart", "fast", "immediate"]


class ChaosPostgres:
    """A cluster of the chaos case's own (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.pg = EmbeddedPostgres(
            root,
            # fsync off only risks an operating-system crash; synchronous_commit stays on.
            settings={"fsync": "off", "full_page_writes": "off", "max_connections": "300"},
        )
        self.server = SyncServer(self.pg, log_file=root / "postgres.log")
        self.log_file = root / "postgres.log"
        self.stops: list[tuple[str, float]] = []

    @property
    def port(self) -> int:
        return self.pg.port

    def start(self) -> None:
        """Start (again, on the same port); returns once it accepts connections. Call it
        from the test's own thread, never through trio.to_thread: the server's
        parent-death signal (pgembed) is tied to the thread that forks it, and trio retires
        idle worker threads, which would stop the server behind the test's back."""
        self.server.start()

    def stop(self, mode: StopMode = "fast") -> None:
        """`pg_ctl stop -m MODE`, waiting until the server has exited."""
        started = time.monotonic()
        result = subprocess.run(
            [
                str(self.pg.bin_dir / "pg_ctl"),
                "stop",
                "-D",
                str(self.pg.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                "60",
            ],
            capture_output=True,
            text=True,
            check=False,
            **self.pg.spawn_kwargs(),
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"pg_ctl stop -m {mode} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        if self.server.process is not None:
            self.server.process.wait(30)  # our child: reaped
        self.stops.append((mode, time.monotonic() - started))

    @property
    def running(self) -> bool:
        return self.server.process is not None and self.server.process.poll() is None

    def close(self) -> None:
        if self.running:
            self.stop("immediate")

    def owner_dsn(self, database: str) -> str:
        return self.pg.dsn(database)

    def app_dsn(self, database: str) -> str:
        return self.pg.app_dsn(database)

    async def new_database(self, name: str) -> ChaosDatabase:
        """A database migrated for the chaos daemons, with the chaos tables and the app login."""

        async def create() -> None:
            bridge, conn = await connect_once(self.owner_dsn("postgres"))
            try:
                await bridge.call(conn.execute, f'CREATE DATABASE "{name}"')
            finally:
                await bridge.call(conn.close)
                bridge.stop()
            bridge, conn = await connect_once(self.owner_dsn(name))
            try:
                await bridge.call(migrate, conn, CHAOS_ENV, load_migrations())
                await bridge.call(conn.execute, functions.SCHEMA)
                await bridge.call(
                    provision_login, self.owner_dsn(name), AppLogin(APP_LOGIN, self.pg.app_password())
                )
            finally:
                await bridge.call(conn.close)
                bridge.stop()

        await create()
        owner = await Database.open(
            self.owner_dsn(name), role=None, min_size=1, max_size=3, connect_timeout=2
        )
        return ChaosDatabase(self, name, owner)

    async def terminate_backends(self, database: str, login: str = APP_LOGIN) -> int:
        """`pg_terminate_backend` for every backend of `login` on `database`; how many."""
        bridge, conn = await connect_once(self.owner_dsn("postgres"))
        try:
            return int(
                await bridge.call(
                    conn.fetchval,
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND usename = $2 AND pid <> pg_backend_pid()",
                    database,
                    login,
                )
            )
        finally:
            await bridge.call(conn.close)
            bridge.stop()

    def postmaster_pid(self) -> int | None:
        info = read_postmaster_pid(self.pg.data_dir)
        return None if info is None else info.pid


class PgBouncer:
    """Debian's `pgbouncer` in front of a ChaosPostgres, in transaction-pooling mode (as
    large deployments run it): clients on 127.0.0.1:`port`, trusted on loopback; it logs
    in to Postgres over TCP with the logins' passwords. Runs as the server's account when
    the tests run as root (pgbouncer refuses root)."""

    BINARY = "/usr/sbin/pgbouncer"

    def __init__(self, cluster: ChaosPostgres, root: Path, *, pool_size: int = 20) -> None:
        self.cluster = cluster
        self.root = root
        self.port = free_port()
        self.pool_size = pool_size
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        pg = self.cluster.pg
        self.root.mkdir(parents=True, exist_ok=True)
        users = {"deneva": pg.superuser_password(), APP_LOGIN: pg.app_password()}
        userlist = self.root / "userlist.txt"
        userlist.write_text("".join(f'"{name}" "{password}"\n' for name, password in users.items()))
        ini = self.root / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={pg.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {userlist}\n"
            "pool_mode = transaction\n"
            # PgBouncer's default (15 s) holds every client that long after Postgres returns.
            "server_login_retry = 1\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 1000\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.root / 'pgbouncer.log'}\npidfile = {self.root / 'pgbouncer.pid'}\n"
        )
        run_as = pg.run_as
        if run_as is not None:
            ensure_traversable(self.root, run_as)
        for path in (self.root, userlist, ini):
            path.chmod(0o700 if path.is_dir() else 0o600)
            if run_as is not None:
                os.chown(path, run_as.uid, run_as.gid)
        return ini

    def start(self) -> None:
        ini = self._write_config()
        run_as = self.cluster.pg.run_as
        kwargs: dict[str, Any] = {}
        if run_as is not None:
            kwargs.update(user=run_as.uid, group=run_as.gid, extra_groups=[])
        with (self.root / "pgbouncer.out").open("ab") as output:
            self.process = subprocess.Popen(
                [self.BINARY, str(ini)], stdout=output, stderr=output, cwd=str(self.root), **kwargs
            )
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                log = (
                    (self.root / "pgbouncer.log").read_text()
                    if (self.root / "pgbouncer.log").exists()
                    else ""
                )
                raise RuntimeError(f"pgbouncer exited {self.process.returncode}: {log[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("pgbouncer did not listen within 15 s") from None
                time.sleep(0.05)

    def url(self, database: str, user: str = APP_LOGIN) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "safe shutdown" is SIGINT; ours needs no wait
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@attrs.define
class ChaosDatabase:
    """One database of a `ChaosPostgres`; queries run as its owner (who sees every row)."""

    cluster: ChaosPostgres
    name: str
    owner: Database

    @property
    def owner_url(self) -> str:
        return self.cluster.owner_dsn(self.name)

    @property
    def app_url(self) -> str:
        return self.cluster.app_dsn(self.name)

    async def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(row) for row in await self.owner.fetch(sql, *args)]

    async def value(self, sql: str, *args: Any) -> Any:
        return await self.owner.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        return await self.owner.execute(sql, *args)

    async def close(self) -> None:
        await self.owner.close()

    # What every case asks of the database afterwards.

    async def describe(self) -> list[dict[str, Any]]:
        """Runs by function and status, with their leases against the database's clock
        (printed when a case fails)."""
        return await self.query(
            "SELECT function_id, status, count(*) AS n, min(attempt) AS min_attempt, "
            "max(attempt) AS max_attempt, min(lease_expires_at - now()) AS lease_left_min, "
            "max(lease_expires_at - now()) AS lease_left_max, "
            "min(run_at - now()) AS due_in_min, array_agg(DISTINCT lease_owner) AS owners, "
            "max(last_error) AS an_error FROM engine_runs GROUP BY 1, 2 ORDER BY 1, 2"
        )

    async def run_counts(self, function_id: str | None = None) -> dict[str, int]:
        rows = await self.query(
            "SELECT status, count(*) AS n FROM engine_runs WHERE $1::text IS NULL OR function_id = $1 "
            "GROUP BY status",
            function_id,
        )
        return {row["status"]: int(row["n"]) for row in rows}

    async def effect_audit(self) -> EffectAudit:
        """What the side-effect table says about `chaos-effect` runs."""
        row = await self.query(
            """
            WITH per_step AS (
                SELECT run_id, step_id, count(*) AS executions, bool_or(recorded_before) AS rerun
                FROM chaos_effects GROUP BY run_id, step_id
            )
            SELECT
                (SELECT count(*) FROM per_step WHERE rerun) AS recorded_reruns,
                (SELECT coalesce(sum(executions - 1), 0) FROM per_step) AS repeated_executions,
                (SELECT count(*) FROM engine_runs r WHERE r.function_id = $1 AND r.status = 'succeeded'
                    AND (SELECT count(DISTINCT step_id) FROM chaos_effects e WHERE e.run_id = r.id) = 2)
                    AS complete_runs,
                (SELECT count(*) FROM engine_runs WHERE function_id = $1 AND last_error LIKE 'worker lost%')
                    AS rescued_runs,
                (SELECT count(*) FROM (
                    SELECT run_id FROM chaos_effects GROUP BY run_id
                    HAVING count(*) FILTER (WHERE step_id = 'one') = 1
                       AND count(DISTINCT pid) FILTER (WHERE step_id = 'two') >= 1
                       AND min(pid) FILTER (WHERE step_id = 'one')
                           <> ALL (array_agg(pid) FILTER (WHERE step_id = 'two'))
                ) AS resumed) AS resumed_past_recorded_step
            """,
            functions.EFFECT_FUNCTION,
        )
        return EffectAudit(**{k: int(v) for k, v in row[0].items()})


@attrs.frozen
class EffectAudit:
    recorded_reruns: int  # steps executed again after their result was recorded: must be 0
    repeated_executions: int  # executions beyond the first (steps cut short by a crash)
    complete_runs: int  # succeeded runs with both steps' effects
    rescued_runs: int  # runs whose last error says their worker was lost
    # Runs whose step one ran (once) in one process and step two in another: a replay that
    # skipped a recorded step.
    resumed_past_recorded_step: int


# -- daemons ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class Replica:
    """One `deneva run` process of a Fleet."""

    name: str
    process: trio.Process
    port: int
    stdout: bytearray
    messages: list[str]
    started_s: float  # from spawn to READY=1
    _notify: trio.socket.SocketType

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def logs(self) -> list[dict[str, Any]]:
        lines = []
        for line in bytes(self.stdout).decode(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"msg": line})
        return lines

    def tail(self, lines: int = 40) -> str:
        return "\n".join(bytes(self.stdout).decode(errors="replace").splitlines()[-lines:])

    async def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        if self.alive:
            self.process.kill()
        await self.process.wait()
        self._notify.close()

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM; the exit status (0 for a clean stop)."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(timeout_s):
            status = await self.process.wait()
        self._notify.close()
        return status

    async def readyz(self, client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
        response = await client.get(f"{self.url}/readyz", timeout=10)
        return response.status_code, response.json()


class Fleet:
    """Replicas of `deneva run` on one ChaosDatabase (see the module's docstring)."""

    def __init__(
        self, nursery: trio.Nursery, workdir: Path, db: ChaosDatabase, env: Mapping[str, str]
    ) -> None:
        self.nursery = nursery
        self.workdir = workdir
        self.db = db
        self.secrets = workdir / "secrets"
        init_secrets(self.secrets)
        self.event_key = (self.secrets / "DENEVA_EVENT_KEY").read_text().strip()
        self.admin_token = (self.secrets / "DENEVA_ADMIN_TOKEN").read_text().strip()
        self.env = dict(env)
        self.replicas: list[Replica] = []
        self.http = httpx.AsyncClient(timeout=30)

    def environment(self, name: str, port: int, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DENEVA_", "NOTIFY_", "WATCHDOG_", "CHAOS_"))
        }
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            DENEVA_ENV=CHAOS_ENV,
            DENEVA_DATABASE_URL=self.db.app_url,
            DENEVA_MIGRATE_DATABASE_URL=self.db.owner_url,
            DENEVA_STATE_DIR=str(self.workdir / name / "state"),
            DENEVA_SECRETS_DIR=str(self.secrets),
            DENEVA_HTTP_BIND=f"127.0.0.1:{port}",
            DENEVA_LOG_FORMAT="json",
            DENEVA_PLATFORMS="none",
            DENEVA_FUNCTIONS_MODULE="tests.chaos.functions",
            NOTIFY_SOCKET=str(self.workdir / name / "notify.sock"),
        )
        env.update(self.env)
        env.update(extra)
        return env

    async def start(self, name: str, *, ready_timeout_s: float = 60.0, **extra: str) -> Replica:
        """Start a replica and wait for its READY=1 (a name used before reuses its state)."""
        port = free_port()
        (self.workdir / name).mkdir(parents=True, exist_ok=True)
        env = self.environment(name, port, **extra)
        sock_path = Path(env["NOTIFY_SOCKET"])
        sock_path.unlink(missing_ok=True)  # noqa: ASYNC240 - one unlink, before the process exists
        notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        await notify.bind(str(sock_path))
        began = time.monotonic()
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "deneva", "run"],
            env=env,
            cwd=str(self.workdir / name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        stdout = bytearray()
        messages: list[str] = []
        arrived = trio.Event()

        async def collect_stdout() -> None:
            assert process.stdout is not None
            async for chunk in process.stdout:
                stdout.extend(chunk)

        async def collect_notifications() -> None:
            nonlocal arrived
            try:
                while True:
                    data = await notify.recv(4096)
                    messages.append(data.decode())
                    arrived.set()
                    arrived = trio.Event()
            except (OSError, trio.ClosedResourceError):
                return

        self.nursery.start_soon(collect_stdout)
        self.nursery.start_soon(collect_notifications)
        replica = Replica(name, process, port, stdout, messages, 0.0, notify)
        with trio.move_on_after(ready_timeout_s):
            while not any(m.startswith("READY=1") or "\nREADY=1" in m for m in messages):
                if process.returncode is not None:
                    break
                with trio.move_on_after(0.2):
                    await arrived.wait()
        if not any("READY=1" in m for m in messages):
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise AssertionError(f"replica {name} did not become ready:\n{replica.tail()}")
        replica.started_s = time.monotonic() - began
        self.replicas.append(replica)
        return replica

    async def send(self, replica: Replica, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """POST events to a replica's /api/events; the ids it acknowledged (202)."""
        response = await self.http.post(
            f"{replica.url}/api/events", json=list(events), headers={"x-event-key": self.event_key}
        )
        if response.status_code != 202:
            raise httpx.HTTPStatusError(
                f"/api/events: {response.status_code} {response.text[:200]}",
                request=response.request,
                response=response,
            )
        return list(response.json()["ids"])

    async def cli(self, *args: str) -> str:
        """Run a `deneva` command on the fleet's database; its stdout (fails on non-zero)."""
        env = self.environment("cli", free_port())
        env.pop("NOTIFY_SOCKET")
        (self.workdir / "cli").mkdir(exist_ok=True)
        result = await trio.run_process(
            [sys.executable, "-m", "deneva", *args],
            env=env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"deneva {' '.join(args)}: {result.stderr.decode().strip()}")
        return result.stdout.decode()

    async def cli_error(self, *args: str, timeout_s: float = 60.0) -> str:
        """Run a `deneva` command that must fail; its one-line error (stderr)."""
        env = self.environment("cli", free_port())
        env.pop("NOTIFY_SOCKET")
        (self.workdir / "cli").mkdir(exist_ok=True)
        with trio.fail_after(timeout_s):
            result = await trio.run_process(
                [sys.executable, "-m", "deneva", *args],
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert result.returncode != 0, f"deneva {' '.join(args)} succeeded"
        return result.stderr.decode().strip()

    async def new_api_key(self, tenant: str) -> str:
        """A tenant (added if new) and a fresh API key of it."""
        await self.cli("tenant", "add", tenant)
        created = json.loads(await self.cli("key", "create", "--tenant", tenant, "--json"))
        return str(created["key"])

    async def authenticates(self, replica: Replica, key: str) -> bool:
        """Whether a replica's /mcp takes the key (anything but 401; the body is no MCP)."""
        response = await self.http.post(
            f"{replica.url}/mcp", content=b"{}", headers={"authorization": f"Bearer {key}"}
        )
        return response.status_code != 401

    async def close(self) -> None:
        for replica in self.replicas:
            if replica.alive:
                with trio.CancelScope(shield=True):
                    await replica.kill()
        await self.http.aclose()


class Load:
    """Posts chaos-effect events all the time, to the first live replica of `targets`
    (a list the test may change meanwhile); keeps the ids acknowledged (202). A refusal
    (503 while the database is away, a replica stopping) is not a loss: the sender knows."""

    def __init__(
        self,
        group: Fleet,
        targets: list[Replica],
        *,
        batch: int = 20,
        every_s: float = 0.1,
        hold_s: float = 0.0,
        prefix: str = "load",
    ) -> None:
        self.group = group
        self.targets = targets
        self.batch = batch
        self.every_s = every_s
        self.hold_s = hold_s
        self.prefix = prefix
        self.acked: list[str] = []
        self.refused = 0
        self._batches = 0

    async def run(self, stop: trio.Event) -> None:
        while not stop.is_set():
            events = effect_events(self.batch, hold_s=self.hold_s, prefix=f"{self.prefix}{self._batches}")
            self._batches += 1
            target = next((r for r in self.targets if r.alive), None)
            try:
                if target is None:
                    raise httpx.ConnectError("no live replica")
                self.acked += await self.group.send(target, events)
            except httpx.HTTPError:
                self.refused += 1
            await trio.sleep(self.every_s)

    async def missing(self, db: ChaosDatabase) -> int:
        """Acknowledged events whose run has not succeeded (yet)."""
        return int(
            await db.value(
                "SELECT count(*) FROM unnest($1::text[]) AS a(id) WHERE NOT EXISTS "
                "(SELECT 1 FROM engine_runs r WHERE r.event->>'id' = a.id "
                "AND r.function_id = 'chaos-effect' AND r.status = 'succeeded')",
                self.acked,
            )
        )


@asynccontextmanager
async def fleet(workdir: Path, db: ChaosDatabase, **env: str) -> AsyncIterator[Fleet]:
    """A Fleet whose replicas are killed when the block ends (on failure, their last log
    lines are printed: pytest shows them with the failure)."""
    async with trio.open_nursery() as nursery:
        group = Fleet(nursery, workdir, db, env)
        try:
            yield group
        except BaseException:
            for replica in group.replicas:
                print(f"--- replica {replica.name} (exit {replica.process.returncode}) ---\n{replica.tail()}")
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                try:
                    print("--- runs ---\n" + "\n".join(map(str, await db.describe())))
                except DatabaseError as exc:
                    print(f"--- runs: database unavailable ({exc}) ---")
            raise
        finally:
            await group.close()
            nursery.cancel_scope.cancel()


def effect_events(count: int, *, hold_s: float = 0.0, prefix: str = "e") -> list[dict[str, Any]]:
    """`count` chaos-effect events with ids of their own."""
    return [
        {"name": functions.EFFECT_EVENT, "id": f"{prefix}-{i}", "data": {"n": i, "hold_s": hold_s}}
        for i in range(count)
    ]


# -- figures ------------------------------------------------------------------------------


@attrs.frozen
class Figure:
    scenario: str
    recovery_s: float | None = None  # from the fault's end to work going on again
    runs_lost: int = 0
    duplicate_steps: int = 0  # recorded steps executed again
    throughput_ratio: float | None = None  # runs/s under the faults / without them
    notes: str = ""


FIGURES: list[Figure] = []


def record_figure(figure: Figure) -> None:
    FIGURES.append(figure)
    path = os.environ.get("DENEVA_CHAOS_FIGURES")
    if path:
        Path(path).write_text(json.dumps([attrs.asdict(f) for f in FIGURES], indent=2) + "\n")


def figures_table(figures: Sequence[Figure]) -> str:
    header = ("scenario", "recovery s", "runs lost", "dup. steps", "throughput", "notes")
    rows = [header] + [
        (
            f.scenario,
            "-" if f.recovery_s is None else f"{f.recovery_s:.2f}",
            str(f.runs_lost),
            str(f.duplicate_steps),
            "-" if f.throughput_ratio is None else f"{f.throughput_ratio:.2f}x",
            f.notes,
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )
