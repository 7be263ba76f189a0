"""The embedded Postgres: finding binaries, root handling, recovery after a crash."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from pathlib import Path

import asyncpg
import pytest

from deneva.admin import run_async
from deneva.errors import EmbeddedPostgresError
from deneva.pgembed import (
    INSTALL_HINT,
    SUPERUSER,
    EmbeddedPostgres,
    SyncServer,
    _pid_alive,
    find_pg_bin,
    packaged_pg_bin,
    read_postmaster_pid,
    server_identity,
)


def _fake_bin(directory: Path) -> Path:
    directory.mkdir(parents=True)
    for name in ("postgres", "initdb"):
        tool = directory / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    return directory


def test_binaries_are_found_on_path_first(tmp_path: Path) -> None:
    on_path = _fake_bin(tmp_path / "path-bin")
    system = _fake_bin(tmp_path / "usr/lib/postgresql/16/bin")
    found = find_pg_bin(
        environ_path=f"/nonexistent:{on_path}", system_glob=str(tmp_path / "usr/lib/postgresql/*/bin")
    )
    assert found == on_path
    found = find_pg_bin(environ_path="/nonexistent", system_glob=str(tmp_path / "usr/lib/postgresql/*/bin"))
    assert found == system


def test_newest_system_version_wins(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16"):
        _fake_bin(tmp_path / f"pg/{version}/bin")
    found = find_pg_bin(environ_path="", system_glob=str(tmp_path / "pg/*/bin"), packaged=False)
    assert found == tmp_path / "pg/16/bin"


def test_no_binaries_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError) as err:
        find_pg_bin(environ_path="", system_glob=str(tmp_path / "none/*/bin"), packaged=False)
    assert str(err.value) == INSTALL_HINT
    assert "pip install 'deneva[embedded]'" in INSTALL_HINT and "DENEVA_DATABASE_URL" in INSTALL_HINT


def test_configured_directory_without_server_is_named(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedPostgresError, match="DENEVA_PG_BIN: .* does not contain"):
        find_pg_bin(tmp_path)


async def _server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_pip_installed_postgres_boots_and_never_runs_as_root(tmp_path: Path) -> None:
    shipped = packaged_pg_bin()
    assert shipped is not None, "the dev extra installs pgserver; it must be importable"
    pg = EmbeddedPostgres(tmp_path / "state", bin_dir=shipped)
    server = SyncServer(pg)
    try:
        dsn = server.start()
        run_async(lambda: _admin_create(pg))
        assert run_async(lambda: _server_version(dsn)).split(".")[0].isdigit()
        info = read_postmaster_pid(pg.data_dir)
        assert info is not None
        assert _uid_of(info.pid) != 0
        # Only the server's account may enter the data and socket directories.
        assert stat.S_IMODE(pg.data_dir.stat().st_mode) == 0o700
        assert stat.S_IMODE(pg.socket_dir.stat().st_mode) == 0o700
    finally:
        server.stop()


async def _admin_create(pg: EmbeddedPostgres) -> None:
    conn = await asyncpg.connect(pg.dsn("postgres"))
    try:
        await conn.execute("CREATE DATABASE deneva")
    finally:
        await conn.close()


def test_a_server_left_behind_is_stopped_before_a_fresh_start(tmp_path: Path) -> None:
    first = SyncServer(EmbeddedPostgres(tmp_path))
    first.start()
    orphan = read_postmaster_pid(first.pg.data_dir)
    assert orphan is not None and _pid_alive(orphan.pid)
    # A new daemon on the same state directory (the old one was killed -9).
    second = SyncServer(EmbeddedPostgres(tmp_path))
    try:
        second.start()
        assert first.process is not None and first.process.wait(timeout=10) is not None
        fresh = read_postmaster_pid(second.pg.data_dir)
        assert fresh is not None and fresh.pid != orphan.pid
        assert run_async(lambda: _admin_create(second.pg)) is None
    finally:
        second.stop()
        first.stop()


def test_stale_pid_file_from_a_recycled_pid_is_removed(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    server = SyncServer(pg)
    server.start()
    server.stop()
    # The pid in a leftover postmaster.pid now belongs to an unrelated live process.
    lines = ["", str(pg.data_dir), "0", "5432", str(pg.socket_dir), "127.0.0.1", "0 0", "ready"]
    lines[0] = str(os.getpid())
    pid_file = pg.data_dir / "postmaster.pid"
    pid_file.write_text("\n".join(lines) + "\n")
    try:
        server.start()
        info = read_postmaster_pid(pg.data_dir)
        assert info is not None and info.pid != os.getpid()
    finally:
        server.stop()


def test_half_initialised_data_directory_is_reported(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.data_dir.mkdir(parents=True)
    (pg.data_dir / "junk").write_text("x")
    with pytest.raises(EmbeddedPostgresError, match="not empty but holds no cluster"):
        pg.initdb()


def test_works_as_a_normal_user(tmp_path: Path) -> None:
    """Run as an unprivileged user, the server runs as that user: no account switch."""
    if os.geteuid() != 0:
        state = tmp_path / "state"
        expected_uid = os.geteuid()
        child = None
    else:
        # We are root here: fork a child that drops to `nobody` and does it from there.
        import pwd
        import tempfile

        nobody = pwd.getpwnam("nobody")
        base = Path(tempfile.mkdtemp(prefix="deneva-user-"))
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        state = base / "state"
        expected_uid = nobody.pw_uid
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked child
            code = 1
            try:
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
                code = _boot_and_check(state, expected_uid)
            finally:
                os._exit(code)
    if child is None:
        assert _boot_and_check(state, expected_uid) == 0
        return
    _, status = os.waitpid(child, 0)
    shutil.rmtree(state.parent, ignore_errors=True)
    assert os.waitstatus_to_exitcode(status) == 0, "the unprivileged boot failed (see captured output)"


def _boot_and_check(state: Path, expected_uid: int) -> int:
    pg = EmbeddedPostgres(state, bin_dir=find_pg_bin())
    assert pg.run_as is None
    server = SyncServer(pg)
    try:
        server.start()
        info = read_postmaster_pid(pg.data_dir)
        assert info is not None and _uid_of(info.pid) == expected_uid
        assert pg.data_dir.stat().st_uid == expected_uid
    except BaseException as exc:  # report from the child, whatever it was
        print(f"unprivileged boot failed: {exc!r}")
        return 1
    finally:
        server.stop()
    return 0


# -- least privilege (issue 11): the server's account, passwords, password files ------------

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the root path needs root")


@root_only
def test_as_root_the_server_runs_as_its_dedicated_account_never_a_shared_one(tmp_path: Path) -> None:
    import pwd

    pg = EmbeddedPostgres(tmp_path)
    assert pg.run_as is not None and pg.run_as.name == "deneva"  # README: the dedicated account
    server = SyncServer(pg)
    try:
        server.start()
        info = read_postmaster_pid(pg.data_dir)
        assert info is not None
        account = pwd.getpwnam("deneva")
        assert _uid_of(info.pid) == account.pw_uid != pwd.getpwnam("nobody").pw_uid
        assert pg.data_dir.stat().st_uid == account.pw_uid
    finally:
        server.stop()


@root_only
def test_a_missing_server_account_is_created_as_a_system_account_without_a_login(tmp_path: Path) -> None:
    import pwd
    import subprocess

    name = f"dnvt{os.getpid() % 100_000}"
    try:
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
        who = server_identity(account=name)
        assert who is not None and who.name == name
        entry = pwd.getpwnam(name)
        assert entry.pw_uid == who.uid and 0 < entry.pw_uid < 1000  # the system range
        assert entry.pw_shell.endswith(("nologin", "false"))
        assert not Path(entry.pw_dir).exists()
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


@root_only
@pytest.mark.parametrize("account", ["nobody", "root"])
def test_a_shared_or_root_account_is_refused_for_the_server(account: str) -> None:
    with pytest.raises(EmbeddedPostgresError, match="shared by unrelated programs|is root"):
        server_identity(account)


async def _connect_without_password(pg: EmbeddedPostgres, *, tcp: bool) -> None:
    host = "127.0.0.1" if tcp else str(pg.socket_dir)
    conn = await asyncpg.connect(
        user=SUPERUSER, host=host, port=pg.port, database="postgres", passfile=str(pg.root / "none")
    )
    await conn.close()


async def _whoami(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


def test_socket_and_loopback_ask_for_a_password_also_on_a_cluster_made_with_a_trust_socket(
    tmp_path: Path,
) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.initdb()
    # What earlier versions wrote: a unix socket that trusts every local connection.
    (pg.data_dir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    server = SyncServer(pg)
    try:
        server.start()
        for tcp in (False, True):
            with pytest.raises(asyncpg.InvalidPasswordError, match="password authentication failed"):
                asyncio.run(_connect_without_password(pg, tcp=tcp))
        assert run_async(lambda: _whoami(pg.dsn("postgres"))) == SUPERUSER  # the password from pgpass
        assert run_async(lambda: _whoami(pg.tcp_dsn("postgres"))) == SUPERUSER
    finally:
        server.stop()


def test_password_files_are_private_from_creation_and_never_written_through_a_link(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.root.mkdir(parents=True)
    # Someone who could write there planted links where the passwords go.
    traps = {}
    for name in (".initdb-pw", "superuser-password", "app-password", "pgpass"):
        trap = tmp_path / f"trap-{name.strip('.')}"
        trap.write_text("")
        trap.chmod(0o644)
        (pg.root / name).symlink_to(trap)
        traps[name] = trap
    (pg.root / "app-password").unlink()  # an existing app-password is read, and a link refused
    server = SyncServer(pg, log_file=pg.root / "postgres.log")
    try:
        server.start()
        for name, trap in traps.items():
            assert trap.read_text() == "", f"{name}: the password was written through the link"
        for name in ("superuser-password", "app-password", "pgpass", "postgres.log", "data/pg_hba.conf"):
            info = (pg.root / name).lstat()
            assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, name
        assert not (pg.root / ".initdb-pw").exists()
    finally:
        server.stop()


def test_an_app_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.root.mkdir(parents=True)
    (pg.root / "app-password").write_text("guessable\n")
    (pg.root / "app-password").chmod(0o644)
    with pytest.raises(EmbeddedPostgresError, match="only its owner can read"):
        pg.app_password()


@root_only
def test_a_cluster_made_under_another_account_is_handed_over_and_starts(tmp_path: Path) -> None:
    """An upgrade: the data directory was initialised under another account (before the
    dedicated one: `postgres`, say). Every file is handed over, and the server starts."""
    import pwd
    import subprocess

    name = f"dnvo{os.getpid() % 100_000}"
    try:
        server_identity(account=name)  # creates the other account
        before = EmbeddedPostgres(tmp_path, pg_user=name)
        server = SyncServer(before)
        server.start()
        server.stop()
        assert (before.data_dir / "PG_VERSION").stat().st_uid == pwd.getpwnam(name).pw_uid
        after = EmbeddedPostgres(tmp_path)  # the dedicated account, `deneva`
        server = SyncServer(after)
        try:
            server.start()
            deneva = pwd.getpwnam("deneva").pw_uid
            owners = {p.stat().st_uid for p in after.data_dir.rglob("*") if not p.is_symlink()}
            assert owners == {deneva}
        finally:
            server.stop()
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
