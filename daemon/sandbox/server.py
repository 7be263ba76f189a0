"""The sandbox as an actor: hypercorn's trio worker serving the sandbox app on one port."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from deneva.sandbox.app import create_sandbox_app
from deneva.sandbox.state import SandboxConfig, SandboxState

log = logging.getLogger("deneva.sandbox")


class SandboxServer:
    """Serves the three platform APIs on host:port; port 0 picks a free port.

    `run` reports the base URL (e.g. "http://127.0.0.1:40123") through
    `task_status.started`; the platforms live under /google, /meta and /tiktok, the
    control API under /_control. It stops when cancelled, or gracefully when the
    optional `shutdown` event is set.
    """

    name = "sandbox"

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown: trio.Event | None = None,
        grace_s: float = 1.0,
    ) -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = port
        self.shutdown = shutdown
        self.grace_s = grace_s
        self.state = SandboxState(self.config)
        self.app = create_sandbox_app(state=self.state)
        self.base_url: str | None = None

    def _hypercorn_config(self) -> HypercornConfig:
        config = HypercornConfig()
        host = f"[{self.host}]" if ":" in self.host else self.host
        config.bind = [f"{host}:{self.port}"]
        config.graceful_timeout = self.grace_s
        config.accesslog = None
        config.errorlog = logging.getLogger("deneva.sandbox.hypercorn")
        config.keep_alive_timeout = 30
        return config

    async def run(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._hypercorn_config()
        trigger = self.shutdown.wait if self.shutdown is not None else None
        async with trio.open_nursery() as nursery:
            try:
                binds: list[str] = await nursery.start(
                    partial(serve, self.app, config, shutdown_trigger=trigger)  # type: ignore[arg-type]
                )
            except OSError as exc:
                raise OSError(
                    exc.errno, f"sandbox: cannot listen on {self.host}:{self.port}: {exc.strerror}"
                ) from None
            self.base_url = binds[0]
            log.info("sandbox serving on %s", self.base_url)
            task_status.started(self.base_url)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deneva.sandbox",
        description="Serve fake Google Ads, Meta and TikTok APIs on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790, help="0 picks a free port (default 8790)")
    parser.add_argument("--seed", type=int, default=0, help="another seed, another set of accounts")
    parser.add_argument(
        "--today", type=date.fromisoformat, default=None, help="pin the reporting date (YYYY-MM-DD)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = SandboxServer(SandboxConfig(seed=args.seed, today=args.today), host=args.host, port=args.port)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            base_url: Any = await nursery.start(server.run)
            print(base_url, flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(exc.strerror or str(exc), file=sys.stderr)
        return 1
    return 0
