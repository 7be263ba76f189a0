"""The embedded-Postgres keeper: runs the server as a child and restarts it if it dies."""

from __future__ import annotations

import logging
import signal
from typing import Any

import trio

from deneva.errors import EmbeddedPostgresError
from deneva.pgembed import EmbeddedPostgres

log = logging.getLogger("deneva.pg")

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class PostgresKeeper:
    name = "postgres"

    def __init__(self, pg: EmbeddedPostgres) -> None:
        self.pg = pg
        self.starts = 0
        self.process: trio.Process | None = None

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        pg = self.pg
        pg.initdb()
        pg.stop_orphan()
        pg.choose_port()
        with open(pg.root / "postgres.log", "ab") as output:
            process = await trio.lowlevel.open_process(
                pg.command(), stdout=output, stderr=output, **pg.spawn_kwargs()
            )
        self.process = process
        self.starts += 1
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                while not pg.ready():
                    if process.poll() is not None:
                        raise EmbeddedPostgresError(
                            f"embedded Postgres exited with status {process.returncode} while starting "
                            f"(see {pg.root / 'postgres.log'})"
                        )
                    await trio.sleep(0.02)
            log.info("embedded Postgres ready", extra={"port": pg.port, "socket_dir": str(pg.socket_dir), "pid": process.pid})
            task_status.started(pg.dsn())
            status = await process.wait()
            raise EmbeddedPostgresError(f"embedded Postgres exited with status {status}")
        finally:
            with trio.CancelScope(shield=True):
                await self._stop(process)

    async def _stop(self, process: trio.Process) -> None:
        if process.returncode is not None:
            return
        process.send_signal(signal.SIGINT)  # fast shutdown: abort transactions, checkpoint
        with trio.move_on_after(STOP_TIMEOUT_S):
            await process.wait()
            log.info("embedded Postgres stopped")
            return
        log.warning("embedded Postgres did not stop in time; killing it")
        process.kill()
        await process.wait()
