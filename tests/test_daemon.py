"""The daemon as systemd runs it: a real process, a NOTIFY_SOCKET we own, real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import httpx
import pytest
import trio

from deneva.pgembed import APP_LOGIN, _pid_alive, dsn_for, read_postmaster_pid
from deneva.secrets import REQUIRED, init_secrets
from tests.conftest import TEST_ENV, Cluster, as_app_login


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class RunningDaemon:
    process: trio.Process
    port: int
    state_dir: Path
    notify: trio.socket.SocketType
    stdout: bytearray
    messages: list[str] = attrs.Factory(list)
    _arrived: trio.Event = attrs.Factory(trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def collect_notifications(self) -> None:
        """Read notify datagrams as systemd does, all the time."""
        while True:
            data = await self.notify.recv(4096)
            self.messages.append(data.decode())
            self._arrived.set()
            self._arrived = trio.Event()

    async def next_message(self, wanted: str) -> list[str]:
        """Wait until a notify datagram containing `wanted` has arrived."""
        while not any(wanted in m for m in self.messages):
            await self._arrived.wait()
        return self.messages


def _env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    secrets = tmp_path / "secrets"
    init_secrets(secrets)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DENEVA_", "NOTIFY_", "WATCHDOG_"))}
    env.update(
        DENEVA_STATE_DIR=str(tmp_path / "state"),
        DENEVA_SECRETS_DIR=str(secrets),
        DENEVA_HTTP_BIND=f"127.0.0.1:{port}",
        DENEVA_LOG_FORMAT="json",
        DENEVA_ENV=TEST_ENV,
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="200000",
    )
    env.update(extra)
    return env


def _remove_stale_socket(path: Path) -> None:
    path.unlink(missing_ok=True)  # left by an earlier daemon in the same test


@asynccontextmanager
async def running_daemon(tmp_path: Path, command: str = "run", **extra: str) -> AsyncIterator[RunningDaemon]:
    port = _free_port()
    env = _env(tmp_path, port, **extra)
    notify = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    _remove_stale_socket(Path(env["NOTIFY_SOCKET"]))
    await notify.bind(env["NOTIFY_SOCKET"])
    stdout = bytearray()
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "deneva", command], env=env, cwd=str(tmp_path), stdout=subprocess.PIPE
    )
    daemon = RunningDaemon(process, port, tmp_path / "state", notify, stdout)

    async def collect() -> None:
        assert process.stdout is not None
        async for chunk in process.stdout:
            stdout.extend(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(collect)
        nursery.start_soon(daemon.collect_notifications)
        try:
            with trio.fail_after(60):
                await daemon.next_message("READY=1")
            yield daemon
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
            nursery.cancel_scope.cancel()
            notify.close()


async def _pool_logins(dsn: str) -> list[str] | None:
    """The logins of the daemon's connections (pool, LISTEN, upkeep); None while the
    server cannot take connections yet, or the daemon has none to it yet."""
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn)
    except (asyncpg.CannotConnectNowError, OSError, UnicodeError):
        return None
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT usename::text FROM pg_stat_activity "
            "WHERE application_name IN ('deneva', 'deneva-listen', 'deneva-upkeep') AND datname = 'deneva'"
        )
        return sorted(r["usename"] for r in rows) or None
    finally:
        await conn.close()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _log_lines(daemon: RunningDaemon) -> list[dict[str, object]]:
    return [json.loads(line) for line in bytes(daemon.stdout).decode().splitlines() if line.strip()]


async def _readyz(client: httpx.AsyncClient, url: str) -> tuple[int, dict[str, object]]:
    response = await client.get(f"{url}/readyz", timeout=10)
    return response.status_code, response.json()


async def test_lifecycle_ready_watchdog_outage_and_clean_stop(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as daemon, httpx.AsyncClient() as client:
        await daemon.next_message("WATCHDOG=1")
        assert (await client.get(f"{daemon.url}/healthz")).status_code == 200
        status, body = await _readyz(client, daemon.url)
        assert status == 200, body
        assert body["checks"] == {"database": "ok", "heartbeat": "ok", "migrations": "ok", "actors": "ok"}

        # The embedded Postgres stops answering: /readyz is 503 and names the database.
        info = read_postmaster_pid(daemon.state_dir / "pg" / "data")
        assert info is not None
        frozen = [info.pid, *_children(info.pid)]
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            with trio.fail_after(5):  # /readyz answers from a check up to a second old
                while (answer := await _readyz(client, daemon.url))[0] != 503:
                    await trio.sleep(0.05)
            body = answer[1]
            assert body["checks"]["database"] == "unreachable"  # type: ignore[index]
            assert any(str(p).startswith("database:") for p in body["problems"])  # type: ignore[attr-defined]
            assert (await client.get(f"{daemon.url}/healthz")).status_code == 200
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        with trio.fail_after(5):
            while (await _readyz(client, daemon.url))[0] != 200:
                await trio.sleep(0.05)

        # The embedded Postgres dies: the daemon restarts it and is ready again.
        os.kill(info.pid, signal.SIGKILL)
        with trio.fail_after(15):
            while True:
                fresh = read_postmaster_pid(daemon.state_dir / "pg" / "data")
                if (
                    fresh is not None
                    and fresh.pid != info.pid
                    and (await _readyz(client, daemon.url))[0] == 200
                ):
                    break
                await trio.sleep(0.05)

        # Its pool logs in as the app login, not as the superuser that migrated. (Here, not
        # before the freeze above: this connection's backend may still be exiting.)
        # The server may still be starting (/readyz's answer can be a second old, and its
        # pid file be half written): asked again until it answers.
        with trio.fail_after(15):
            while True:
                server = read_postmaster_pid(daemon.state_dir / "pg" / "data")
                if server is not None and str(server.socket_dir) not in ("", "."):
                    superuser = dsn_for(server)
                    logins = await trio.to_thread.run_sync(asyncio.run, _pool_logins(superuser))
                    if logins is not None:
                        break
                await trio.sleep(0.05)
        assert logins == [APP_LOGIN]

        # SIGTERM: STOPPING=1, exit 0 within 10 s, Postgres stopped, nothing left behind.
        daemon.process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await daemon.process.wait() == 0
            await daemon.next_message("STOPPING=1")
        assert not _pid_alive(server.pid)
        assert read_postmaster_pid(daemon.state_dir / "pg" / "data") is None

    order = [m.split("\n")[0] for m in daemon.messages]
    assert order.index("READY=1") < order.index("WATCHDOG=1") < order.index("STOPPING=1")
    logs = _log_lines(daemon)
    assert any(
        line["msg"] == "actor crashed; restarting" and line.get("actor") == "postgres" for line in logs
    )
    secret_values = [(tmp_path / "secrets" / name).read_text().strip() for name in REQUIRED]
    text = bytes(daemon.stdout).decode()
    assert text and not any(value in text for value in secret_values)


async def test_restart_after_the_daemon_was_killed(tmp_path: Path) -> None:
    async with running_daemon(tmp_path) as first:
        first.process.kill()  # SIGKILL: no clean-up at all
        await first.process.wait()
    async with running_daemon(tmp_path) as second, httpx.AsyncClient() as client:
        with trio.fail_after(10):
            while (await _readyz(client, second.url))[0] != 200:
                await trio.sleep(0.05)
        second.process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await second.process.wait() == 0


async def test_external_database_and_sighup_reload(tmp_path: Path, database_url: str) -> None:
    config = tmp_path / "deneva.toml"
    config.write_text('log_level = "info"\n')
    async with (
        running_daemon(tmp_path, **_external(database_url), DENEVA_CONFIG=str(config)) as daemon,
        httpx.AsyncClient() as client,
    ):
        assert not (daemon.state_dir / "pg").exists()
        assert (await _readyz(client, daemon.url))[0] == 200
        config.write_text('log_level = "debug"\n')
        daemon.process.send_signal(signal.SIGHUP)
        await daemon.next_message("RELOADING=1")
        with trio.fail_after(10):
            while not any(line["msg"] == "config reloaded" for line in _log_lines(daemon)):
                await trio.sleep(0.05)
        reload_line = next(line for line in _log_lines(daemon) if line["msg"] == "config reloaded")
        assert reload_line["applied"] == ["log_level"]
        daemon.process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await daemon.process.wait() == 0


def _external(database_url: str) -> dict[str, str]:
    """An external Postgres as the deploy docs configure it: the pool's login, and the
    owner's for migrations."""
    return {"DENEVA_DATABASE_URL": as_app_login(database_url), "DENEVA_MIGRATE_DATABASE_URL": database_url}


def _run_cli(tmp_path: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = _env(tmp_path, _free_port(), **extra)
    env.pop("NOTIFY_SOCKET")
    return subprocess.run(
        [sys.executable, "-m", "deneva", *args],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("deneva: error: ")
    return lines[0]


@pytest.mark.parametrize("missing", ["DENEVA_KEK", "DENEVA_SIGNING_KEY"])
def test_missing_secret_stops_the_start_naming_it(tmp_path: Path, missing: str) -> None:
    init_secrets(tmp_path / "partial")
    (tmp_path / "partial" / missing).unlink()
    env_secrets = str(tmp_path / "partial")
    line = _one_line_error(_run_cli(tmp_path, "run", DENEVA_SECRETS_DIR=env_secrets))
    assert f"{missing}: missing" in line


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"DENEVA_WORKERS": "lots"}, "DENEVA_WORKERS"),
        ({"DENEVA_HTTP_BIND": "256.1.1.1:80"}, "DENEVA_HTTP_BIND"),
        ({"DENEVA_LOG_LEVEL": "loud"}, "DENEVA_LOG_LEVEL"),
        ({"DENEVA_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "DENEVA_DATABASE_URL"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_culprit(
    tmp_path: Path, extra: dict[str, str], named: str
) -> None:
    assert named in _one_line_error(_run_cli(tmp_path, "run", **extra))


@pytest.mark.parametrize("command", [("run",), ("tenant", "list")])
def test_a_pool_login_that_could_step_around_row_level_security_is_refused(
    tmp_path: Path, database_url: str, command: tuple[str, ...]
) -> None:
    # The superuser that migrated the database, configured as the pool's login.
    line = _one_line_error(_run_cli(tmp_path, *command, DENEVA_DATABASE_URL=database_url))
    assert "DENEVA_DATABASE_URL" in line and "bypasses row-level security" in line


def test_without_the_owners_url_nothing_migrates_and_an_unmigrated_schema_is_refused(
    tmp_path: Path, cluster: Cluster
) -> None:
    name = cluster.new_database(template="template0")
    app, owner = cluster.app_dsn(name), cluster.dsn(name)
    line = _one_line_error(_run_cli(tmp_path, "tenant", "list", DENEVA_DATABASE_URL=app))
    assert "not migrated" in line and "DENEVA_MIGRATE_DATABASE_URL" in line
    line = _one_line_error(_run_cli(tmp_path, "migrate", DENEVA_DATABASE_URL=app))
    assert "DENEVA_MIGRATE_DATABASE_URL: not set" in line
    done = _run_cli(tmp_path, "migrate", DENEVA_DATABASE_URL=app, DENEVA_MIGRATE_DATABASE_URL=owner)
    assert done.returncode == 0 and "applied 0007_least_privilege.sql" in done.stdout, done.stderr
    listed = _run_cli(tmp_path, "tenant", "list", "--json", DENEVA_DATABASE_URL=app)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


def test_malformed_and_unknown_toml_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = [\n")
    assert "invalid TOML" in _one_line_error(_run_cli(tmp_path, "run", "--config", str(bad)))
    bad.write_text("colour = 'blue'\n")
    assert "unknown key 'colour'" in _one_line_error(_run_cli(tmp_path, "run", "--config", str(bad)))


def test_http_port_in_use_is_named(tmp_path: Path, database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_error(
            _run_cli(tmp_path, "run", **_external(database_url), DENEVA_HTTP_BIND=f"127.0.0.1:{port}")
        )
    assert "DENEVA_HTTP_BIND" in line and str(port) in line


def test_database_of_another_environment_is_refused(tmp_path: Path, database_url: str) -> None:
    line = _one_line_error(_run_cli(tmp_path, "run", **_external(database_url), DENEVA_ENV="production"))
    assert "DENEVA_ENV" in line and "'test'" in line


def test_migrate_command_uses_the_embedded_database(tmp_path: Path) -> None:
    first = _run_cli(tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_foundation.sql" in first.stdout
    again = _run_cli(tmp_path, "migrate")
    assert again.returncode == 0 and "up to date" in again.stdout
    # The embedded server it started for the command is stopped again.
    assert read_postmaster_pid(tmp_path / "state" / "pg" / "data") is None


def test_secrets_init_command_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    first = _run_cli(tmp_path, "secrets", "init", str(target))
    assert first.returncode == 0 and first.stdout.count("created") == 4
    before = (target / "DENEVA_KEK").read_text()
    again = _run_cli(tmp_path, "secrets", "init", str(target))
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert (target / "DENEVA_KEK").read_text() == before


async def test_demo_connects_a_tenant_to_the_sandbox_and_warms_its_cache(tmp_path: Path) -> None:
    import asyncpg

    from deneva.pgembed import dsn_for, running_server

    async with running_daemon(tmp_path, command="demo") as daemon:
        key_file = daemon.state_dir / "demo-api-key"
        assert key_file.read_text().startswith("dnv_")
        info = running_server(daemon.state_dir)
        assert info is not None

        async def cached() -> int:
            conn = await asyncpg.connect(dsn_for(info))
            try:
                return int(await conn.fetchval("SELECT count(*) FROM metric_cache WHERE NOT is_stale"))
            finally:
                await conn.close()

        with trio.fail_after(60):  # "warm within a minute"
            while await trio.to_thread.run_sync(lambda: __import__("asyncio").run(cached())) < 25:
                await trio.sleep(0.2)
        daemon.process.send_signal(signal.SIGTERM)
        with trio.fail_after(10):
            assert await daemon.process.wait() == 0
