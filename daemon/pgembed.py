"""The embedded Postgres: a private cluster under the state directory.

It finds server binaries (DENEVA_PG_BIN, PATH, /usr/lib/postgresql/*/bin, or the
`pgserver` wheel), initialises the cluster on first boot, and, when run as root
(which Postgres refuses), runs the server as a dedicated system account (`deneva`,
created with useradd if missing, or DENEVA_PG_USER; never a shared one such as
`nobody`). It listens on a unix socket in a 0700 directory and on loopback, and asks
for a password (scram-sha-256) on both: pg_hba.conf is rewritten at every start.

Two roles log in: the superuser (migrations, first-boot set-up) and `deneva_daemon`,
the login of the daemon's pool, which row-level security binds (see deneva.admin).
Their generated passwords are in `pg/superuser-password` and `pg/app-password`, and
both in `pg/pgpass`, which the DSNs name (`passfile=`), so no DSN holds a password.
Every password file is created with mode 0600 (never chmod-ed after).
A server left behind by a daemon that was killed is stopped before a fresh start.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import hashlib
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import attrs

from deneva.errors import EmbeddedPostgresError

log = logging.getLogger("deneva.pg")

SUPERUSER = "deneva"
DATABASE = "deneva"
# The login role of the daemon's pool on the embedded server (a member of deneva_system).
APP_LOGIN = "deneva_daemon"
# As root, the server runs as this system account (created if missing).
SERVER_ACCOUNT = "deneva"
# Accounts that unrelated programs share: never run the server as one of them.
SHARED_ACCOUNTS = ("nobody",)
NOBODY_UID = 65534
_NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
_NEEDED = ("postgres", "initdb")
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; ".s.PGSQL.NNNNN" needs 15 of them

INSTALL_HINT = (
    "no PostgreSQL server binaries found (looked at DENEVA_PG_BIN, PATH, "
    "/usr/lib/postgresql/*/bin and the pgserver package); install one with "
    "`pip install 'deneva[embedded]'` (ships PostgreSQL via pgserver) or "
    "`apt-get install postgresql`, or set DENEVA_DATABASE_URL to use an existing server"
)


def _has_server(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in _NEEDED)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path))


SYSTEM_GLOB = "/usr/lib/postgresql/*/bin"


def packaged_pg_bin() -> Path | None:
    """The server binaries shipped by the `pgserver` wheel, if it is installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "pginstall" / "bin"
            if _has_server(candidate):
                return candidate
    return None


def find_pg_bin(
    configured: Path | None = None,
    environ_path: str | None = None,
    system_glob: str = SYSTEM_GLOB,
    packaged: bool = True,
) -> Path:
    """Locate a directory holding `postgres` and `initdb`."""
    if configured is not None:
        if _has_server(configured):
            return configured
        raise EmbeddedPostgresError(
            f"DENEVA_PG_BIN: {configured} does not contain executable postgres and initdb"
        )
    search = os.environ.get("PATH", "") if environ_path is None else environ_path
    for entry in search.split(os.pathsep):
        if entry and _has_server(Path(entry)):
            return Path(entry)
    for candidate in sorted(glob.glob(system_glob), key=_version_key, reverse=True):
        if _has_server(Path(candidate)):
            return Path(candidate)
    shipped = packaged_pg_bin() if packaged else None
    if shipped is not None:
        return shipped
    raise EmbeddedPostgresError(INSTALL_HINT)


@attrs.frozen
class RunAs:
    name: str
    uid: int
    gid: int


def server_identity(configured_user: str | None = None, account: str = SERVER_ACCOUNT) -> RunAs | None:
    """Who runs the server: ourselves, or (as root) a dedicated unprivileged account:
    DENEVA_PG_USER if set, else `account`, created as a system account if missing."""
    if os.geteuid() != 0:
        return None
    if configured_user:
        try:
            entry = pwd.getpwnam(configured_user)
        except KeyError:
            raise EmbeddedPostgresError(
                f"DENEVA_PG_USER: no account named {configured_user!r}; create it "
                f"(useradd --system {configured_user}) or leave DENEVA_PG_USER unset to use {account!r}"
            ) from None
        return _dedicated(entry, "DENEVA_PG_USER")
    return _dedicated(ensure_system_account(account), "the embedded Postgres account")


def _dedicated(entry: pwd.struct_passwd, what: str) -> RunAs:
    if entry.pw_uid == 0:
        raise EmbeddedPostgresError(f"{what}: {entry.pw_name} is root; Postgres refuses to run as root")
    if entry.pw_name in SHARED_ACCOUNTS or entry.pw_uid == NOBODY_UID:
        raise EmbeddedPostgresError(
            f"{what}: {entry.pw_name} is shared by unrelated programs, so they could read the "
            f"database files; use a dedicated account (by default {SERVER_ACCOUNT!r}, created if missing)"
        )
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def ensure_system_account(name: str) -> pwd.struct_passwd:
    """The system account `name`, created (useradd --system, no home, no login shell)
    if it does not exist yet."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    if useradd is None:
        raise EmbeddedPostgresError(
            f"running as root, the embedded Postgres needs an unprivileged account of its own: "
            f"create a system account named {name!r} (useradd is not installed here) or set DENEVA_PG_USER"
        )
    shell = next((path for path in _NOLOGIN_SHELLS if os.path.exists(path)), "/bin/false")
    argv = [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent"]
    argv += ["--shell", shell, "--comment", "deneva embedded Postgres", name]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    try:
        entry = pwd.getpwnam(name)  # also when a concurrent start created it first
    except KeyError:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise EmbeddedPostgresError(
            f"could not create the system account {name!r} for the embedded Postgres "
            f"({detail[-1] if detail else f'useradd exited {result.returncode}'}); "
            "create it or set DENEVA_PG_USER"
        ) from None
    log.warning(
        "created a system account for the embedded Postgres", extra={"user": name, "uid": entry.pw_uid}
    )
    return entry


def write_private_file(path: Path, text: str, owner: RunAs | None = None) -> None:
    """Write `text` to a new file that is mode 0600 from its creation (owned by `owner`
    if given), replacing `path` atomically; a symlink or file already at `path` is
    replaced, never written through."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            if owner is not None:
                os.fchown(handle.fileno(), owner.uid, owner.gid)
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def read_private_file(path: Path) -> str | None:
    """The stripped text of a secret file that only its owner can read; None if absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmbeddedPostgresError(f"{path}: cannot read it ({exc.strerror})") from None
    with os.fdopen(fd) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise EmbeddedPostgresError(
                f"{path}: a password file must be a regular file that only its owner can read (mode 0600)"
            )
        return handle.read().strip()


def ensure_traversable(path: Path, who: RunAs) -> None:
    """Let `who` reach `path`: add search (o+x) to ancestors that deny it."""
    for ancestor in [*reversed(path.resolve().parents)]:
        info = ancestor.stat()
        if info.st_uid == who.uid and info.st_mode & stat.S_IXUSR:
            continue
        if info.st_gid == who.gid and info.st_mode & stat.S_IXGRP:
            continue
        if info.st_mode & stat.S_IXOTH:
            continue
        log.warning(
            "granting search permission so the Postgres user can reach its data",
            extra={"directory": str(ancestor), "user": who.name},
        )
        ancestor.chmod(info.st_mode | stat.S_IXOTH)


def _set_parent_death_signal() -> None:
    # If the daemon dies (even by SIGKILL), the kernel asks Postgres for a fast shutdown.
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGINT, 0, 0, 0)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not reaped it yet
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


@attrs.frozen
class PostmasterInfo:
    pid: int
    data_dir: Path
    port: int
    socket_dir: Path
    status: str


def read_postmaster_pid(data_dir: Path) -> PostmasterInfo | None:
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        status = lines[7].strip() if len(lines) > 7 else ""
        return PostmasterInfo(int(lines[0]), Path(lines[1]), int(lines[3]), Path(lines[4]), status)
    except (IndexError, ValueError):
        return None


class StateLock:
    """An exclusive lock on the state directory: one daemon per state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "deneva.lock"
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the process lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class EmbeddedPostgres:
    """One private cluster; `start()`-ing it is left to the caller (sync or trio)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        bin_dir: Path | None = None,
        pg_user: str | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.root = self.state_dir / "pg"
        self.data_dir = self.root / "data"
        self.bin_dir = find_pg_bin(bin_dir)
        self.run_as = server_identity(pg_user)
        self.settings = dict(settings or {})
        self.password_file = self.root / "superuser-password"
        self.app_password_file = self.root / "app-password"
        self.pgpass_file = self.root / "pgpass"
        self.port_file = self.root / "port"
        self.socket_dir = self._choose_socket_dir()
        self.port = 0

    # -- layout ----------------------------------------------------------------

    def _choose_socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred)) + 16 <= _SOCKET_PATH_MAX:
            return preferred
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"deneva-pg-{os.geteuid()}-{digest}"

    def _own(self, path: Path) -> None:
        if self.run_as is not None:
            os.chown(path, self.run_as.uid, self.run_as.gid)

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.run_as is not None:
            # The Postgres user must reach data and binaries; nobody else needs to.
            self.root.chmod(0o711)
            ensure_traversable(self.root, self.run_as)
            ensure_traversable(self.bin_dir, self.run_as)
        for directory in (self.data_dir, self.socket_dir):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            directory.chmod(0o700)
            self._own(directory)
        if self.run_as is not None and self.initialised:
            self._adopt_data_dir(self.run_as)

    def _adopt_data_dir(self, who: RunAs) -> None:
        """A cluster initialised under another account (before the dedicated one, e.g.
        `postgres` or `nobody`) is handed over to `who`: Postgres only starts on a data
        directory its own account owns."""
        # Judged by a file initdb wrote (PG_VERSION): the directory itself was just made
        # the account's by `_prepare_dirs`, whoever owns what is in it.
        if (self.data_dir / "PG_VERSION").stat().st_uid == who.uid:
            return
        log.warning(
            "handing the embedded Postgres data over to its dedicated account",
            extra={"data_dir": str(self.data_dir), "user": who.name},
        )
        for top, dirs, files in os.walk(self.data_dir):
            os.lchown(top, who.uid, who.gid)
            for name in (*dirs, *files):
                os.lchown(os.path.join(top, name), who.uid, who.gid)

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def superuser_password(self) -> str:
        password = read_private_file(self.password_file)
        if not password:
            raise EmbeddedPostgresError(
                f"{self.password_file}: missing or empty (the cluster's superuser password)"
            )
        return password

    def app_password(self) -> str:
        """The password of the pool's login (APP_LOGIN), generated on first use."""
        password = read_private_file(self.app_password_file)
        if password:
            return password
        password = secrets.token_urlsafe(24)
        write_private_file(self.app_password_file, password + "\n")
        return password

    def write_pgpass(self) -> None:
        """`pg/pgpass` (the libpq password-file format) for both logins; the DSNs name it."""
        lines = [f"*:*:*:{SUPERUSER}:{self.superuser_password()}", f"*:*:*:{APP_LOGIN}:{self.app_password()}"]
        write_private_file(self.pgpass_file, "\n".join(lines) + "\n")

    def write_hba(self) -> None:
        """Every connection, socket or TCP, authenticates with a password (scram-sha-256):
        clusters initialised by older versions (a trust socket) are brought in line."""
        text = (
            "# Written by deneva at every start; edits are lost.\n"
            "local all all scram-sha-256\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
            "host  all all ::1/128 scram-sha-256\n"
        )
        write_private_file(self.data_dir / "pg_hba.conf", text, owner=self.run_as)

    def prepare(self) -> None:
        """Everything before the server process starts (blocking: first boot runs initdb,
        an orphaned server is waited for); trio callers run it in a thread."""
        self.initdb()
        self.stop_orphan()
        self.write_hba()
        self.write_pgpass()
        self.choose_port()

    def open_log(self) -> int:
        """The server's log file (it may quote statements): 0600 from its creation."""
        return os.open(self.root / "postgres.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def _run_tool(self, argv: Sequence[str], what: str) -> None:
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False, **self._spawn_kwargs(death_signal=False)
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise EmbeddedPostgresError(f"{what} failed: {detail[-1] if detail else result.returncode}")

    def _spawn_kwargs(self, *, death_signal: bool = True) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"cwd": str(self.root), "env": self._server_env()}
        if self.run_as is not None:
            kwargs.update(user=self.run_as.uid, group=self.run_as.gid, extra_groups=[])
        if death_signal:
            kwargs["preexec_fn"] = _set_parent_death_signal
        return kwargs

    def _server_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        env.setdefault("LC_ALL", "C")
        return env

    def initdb(self) -> None:
        """Create the cluster on first boot (idempotent)."""
        self._prepare_dirs()
        if self.initialised:
            return
        if any(self.data_dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.data_dir} is not empty but holds no cluster (a half-finished first boot?); "
                "move it away and start again"
            )
        password = secrets.token_urlsafe(24)
        write_private_file(self.password_file, password + "\n")
        pwfile = self.root / ".initdb-pw"  # initdb runs as the server's account: it must read this
        write_private_file(pwfile, password + "\n", owner=self.run_as)
        try:
            self._run_tool(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                "initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        log.info(
            "initialised embedded Postgres",
            extra={"data_dir": str(self.data_dir), "bin_dir": str(self.bin_dir)},
        )

    # -- recovery after a crash ---------------------------------------------------

    def stop_orphan(self, wait_s: float = 15.0) -> None:
        """Stop a server left running on our data directory, or drop a stale pid file."""
        info = read_postmaster_pid(self.data_dir)
        if info is None:
            return
        cmdline = _cmdline(info.pid)
        ours = (
            _pid_alive(info.pid)
            and any("postgres" in part for part in cmdline[:1])
            and str(self.data_dir) in " ".join(cmdline)
        )
        if not ours:
            if not _pid_alive(info.pid) or cmdline:
                log.warning("removing stale postmaster.pid", extra={"pid": info.pid})
                (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
            return
        log.warning("stopping a Postgres left behind by an earlier run", extra={"pid": info.pid})
        for sig, patience in ((signal.SIGINT, wait_s), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(info.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + patience
            while time.monotonic() < deadline:
                if not _pid_alive(info.pid):
                    return
                time.sleep(0.05)
        raise EmbeddedPostgresError(f"could not stop the orphaned Postgres (pid {info.pid})")

    # -- starting -------------------------------------------------------------------

    def choose_port(self) -> int:
        try:
            previous = int(self.port_file.read_text())
        except (OSError, ValueError):
            previous = 0
        port = previous if previous and _port_free(previous) else _free_port()
        self.port_file.write_text(f"{port}\n")
        self.port = port
        return port

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_permissions": "0700",
            "password_encryption": "scram-sha-256",
            "max_connections": "200",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_connections": "off",
        }
        settings.update(self.settings)
        argv = [
            str(self.bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
        ]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def spawn_kwargs(self) -> dict[str, Any]:
        return self._spawn_kwargs()

    def ready(self) -> bool:
        info = read_postmaster_pid(self.data_dir)
        return (
            info is not None
            and info.status == "ready"
            and (self.socket_dir / f".s.PGSQL.{self.port}").exists()
        )

    def dsn(self, database: str = DATABASE, user: str = SUPERUSER) -> str:
        """A unix-socket DSN for `user` (the superuser by default); the password comes
        from `pg/pgpass`."""
        return _socket_dsn(user, database, self.socket_dir, self.port, self.pgpass_file)

    def app_dsn(self, database: str = DATABASE) -> str:
        """The DSN of the daemon's pool: the APP_LOGIN role, which row-level security binds."""
        return self.dsn(database, APP_LOGIN)

    def tcp_dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}:{self.superuser_password()}@127.0.0.1:{self.port}/{database}"


def running_server(state_dir: Path) -> PostmasterInfo | None:
    """The embedded server of a running daemon, if there is one serving."""
    info = read_postmaster_pid(state_dir.resolve() / "pg" / "data")
    if info is None or info.status != "ready" or not _pid_alive(info.pid):
        return None
    return info


def _socket_dsn(user: str, database: str, socket_dir: Path, port: int, passfile: Path) -> str:
    query = f"host={quote(str(socket_dir))}&port={port}&passfile={quote(str(passfile))}"
    return f"postgresql://{user}@/{database}?{query}"


def dsn_for(info: PostmasterInfo, database: str = DATABASE, user: str = SUPERUSER) -> str:
    """A DSN for a running daemon's embedded server (found through its pid file)."""
    passfile = info.data_dir.parent / "pgpass"
    return _socket_dsn(user, database, info.socket_dir, info.port, passfile)


class SyncServer:
    """Run the embedded Postgres from synchronous code (CLI commands, the test session)."""

    def __init__(self, pg: EmbeddedPostgres, log_file: Path | None = None) -> None:
        self.pg = pg
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0, on_wait: Callable[[], None] | None = None) -> str:
        pg = self.pg
        pg.prepare()
        if self.log_file is None:
            self.process = subprocess.Popen(
                pg.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **pg.spawn_kwargs()
            )
        else:
            fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                self.process = subprocess.Popen(pg.command(), stdout=fd, stderr=fd, **pg.spawn_kwargs())
            finally:
                os.close(fd)
        deadline = time.monotonic() + timeout
        while not pg.ready():
            if self.process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"embedded Postgres exited with status {self.process.returncode} while starting"
                    + (f" (see {self.log_file})" if self.log_file else "")
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedPostgresError(f"embedded Postgres did not become ready within {timeout:.0f} s")
            if on_wait:
                on_wait()
            time.sleep(0.02)
        return pg.dsn()

    def stop(self, timeout: float = 30.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
