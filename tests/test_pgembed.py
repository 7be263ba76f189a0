"""The embedded Postgres: finding binaries, root handling, recovery after a crash."""

from __future__ import annotations

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
    EmbeddedPostgres,
    SyncServer,
    _pid_alive,
    find_pg_bin,
    packaged_pg_bin,
    read_postmaster_pid,
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
