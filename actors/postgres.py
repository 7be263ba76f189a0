"""The embedded-Postgres keeper: runs the server as a child and restarts it if it dies."""

from __future__ import annotations

import logging
import os
import signal
import subprocess

import trio

from deneva.errors import EmbeddedPostgresError
from deneva.pgembed import EmbeddedPostgres

log = logging.getLogger("deneva.pg")

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class ChildProcess:
    """A child process whose exit trio can await (through a pidfd, else by polling)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        try:
            self._pidfd: int | None = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def poll(self) -> int | None:
        return self.popen.poll()

    def send_signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        while self.popen.poll() is None:
            if self._pidfd is not None:
                await trio.lowlevel.wait_readable(self._pidfd)
            else:
                await trio.sleep(0.05)
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        return self.popen.returncode


class PostgresKeeper:
    name = "postgres"

    def __init__(self, pg: EmbeddedPostgres) -> None:
        self.pg = pg
        self.starts = 0
        self.process: ChildProcess | None = None

    def _spawn(self) -> ChildProcess:
        """Start the prepared server, on the main thread.

        Not trio.run_process: that forks from a worker thread, and the parent-death
        signal set in the child is tied to the thread that forked it, which trio
        retires after 10 s idle.
        """
        pg = self.pg
        output = pg.open_log()
        try:
            popen = subprocess.Popen(pg.command(), stdout=output, stderr=output, **pg.spawn_kwargs())
        finally:
            os.close(output)
        return ChildProcess(popen)

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        pg = self.pg
        # initdb (first boot) and waiting for an orphaned server to stop block: in a thread,
        # so the event loop (signals, the watchdog) keeps running meanwhile.
        await trio.to_thread.run_sync(pg.prepare)
        process = self._spawn()
        self.process = process
        self.starts += 1
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                while not pg.ready():
                    if process.poll() is not None:
                        raise EmbeddedPostgresError(
                            f"embedded Postgres exited with status {process.poll()} while starting "
                            f"(see {pg.root / 'postgres.log'})"
                        )
                    await trio.sleep(0.02)
            log.info(
                "embedded Postgres ready",
                extra={"port": pg.port, "socket_dir": str(pg.socket_dir), "pid": process.pid},
            )
            task_status.started(pg.dsn())
            status = await process.wait()
            raise EmbeddedPostgresError(f"embedded Postgres exited with status {status}")
        finally:
            with trio.CancelScope(shield=True):
                await self._stop(process)

    async def _stop(self, process: ChildProcess) -> None:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # fast shutdown: abort transactions, checkpoint
        with trio.move_on_after(STOP_TIMEOUT_S):
            await process.wait()
            log.info("embedded Postgres stopped")
            return
        log.warning("embedded Postgres did not stop in time; killing it")
        process.kill()
        await process.wait()
