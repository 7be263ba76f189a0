"""The HTTP actor: hypercorn's trio worker serving the quart-trio app."""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from quart_trio import QuartTrio

from deneva.config import Bind

log = logging.getLogger("deneva.http")


class HttpServer:
    name = "http"
    drains = True

    def __init__(self, app: QuartTrio, bind: Bind, drain: trio.Event, grace_s: float) -> None:
        self.app = app
        self.bind = bind
        self.drain = drain
        self.grace_s = grace_s

    def _hypercorn_config(self) -> HypercornConfig:
        config = HypercornConfig()
        config.bind = [str(self.bind)]
        config.graceful_timeout = self.grace_s
        config.accesslog = None
        config.errorlog = logging.getLogger("deneva.http.hypercorn")
        config.keep_alive_timeout = 30
        config.h11_max_incomplete_size = 64 * 1024
        config.websocket_max_message_size = 1024 * 1024
        return config

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._hypercorn_config()

        try:
            await serve(self.app, config, shutdown_trigger=self.drain.wait, task_status=task_status)  # type: ignore[arg-type]
        except OSError as exc:
            raise OSError(exc.errno, f"DENEVA_HTTP_BIND: cannot listen on {self.bind}: {exc.strerror}") from None
