"""The embedded-Postgres keeper: it starts the server, and what blocks (first boot, an
orphaned server to stop) never blocks the event loop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import trio

from deneva.actors.postgres import PostgresKeeper
from deneva.pgembed import EmbeddedPostgres, read_postmaster_pid

_STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


def _stubborn_orphan(pg: EmbeddedPostgres) -> subprocess.Popen[bytes]:
    """A server left behind by a killed daemon, slow to honour the fast-shutdown signal."""
    orphan = subprocess.Popen(
        ["postgres", "-c", _STUBBORN, "-D", str(pg.data_dir)],
        executable=sys.executable,
        stdout=subprocess.PIPE,
    )
    assert orphan.stdout is not None and orphan.stdout.readline() == b"ready\n"
    lines = [str(orphan.pid), str(pg.data_dir), "0", "5432", str(pg.socket_dir), "127.0.0.1", "0 0", "ready"]
    (pg.data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
    return orphan


async def test_waiting_for_an_orphaned_server_to_stop_leaves_the_event_loop_running(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path)
    pg.initdb()
    orphan = _stubborn_orphan(pg)
    keeper = PostgresKeeper(pg)
    ticks = 0

    async def tick_then_kill_the_orphan() -> None:
        nonlocal ticks
        while orphan.poll() is None:
            await trio.sleep(0.01)
            ticks += 1
            if ticks == 20:
                orphan.kill()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tick_then_kill_the_orphan)
            with trio.fail_after(60):
                await nursery.start(keeper.run)
            # The loop ran while the keeper waited: this task killed the orphan, the
            # keeper's own escalation (SIGQUIT after 15 s) never came.
            assert ticks >= 20 and orphan.returncode == -signal.SIGKILL
            info = read_postmaster_pid(pg.data_dir)
            assert info is not None and info.pid != orphan.pid and info.status == "ready"
            nursery.cancel_scope.cancel()
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
