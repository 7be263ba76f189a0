"""The HTTP actor: hypercorn's trio worker serving the quart-trio app.

On drain it stops accepting, lets requests in flight finish (up to the grace
period), then closes what is left, idle keep-alive connections included: hypercorn
on its own would hold the shutdown for the whole graceful timeout while a client
keeps an idle connection open.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from deneva.config import Bind
from deneva.errors import ConfigError
from deneva.http import hypercorn_tcp
from deneva.http.instrument import Instrumented
from deneva.metrics import Metrics

log = logging.getLogger("deneva.http")

Scope = Any  # ASGI scope/receive/send: hypercorn's precise types add nothing here
Receive = Any
Send = Any
ASGIApp = Any


class InFlight:
    """ASGI wrapper counting HTTP requests and WebSockets under way, so a drain knows when
    they are done (MCP sockets close themselves with 1001 when the drain starts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self._idle = trio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # a WebSocket closes itself on drain
            await self.app(scope, receive, send)
            return
        self.count += 1
        self._idle = trio.Event()
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        while self.count:
            await self._idle.wait()


class HttpServer:
    name = "http"
    drains = True

    def __init__(
        self, app: ASGIApp, bind: Bind, drain: trio.Event, grace_s: float, *, metrics: Metrics | None = None
    ) -> None:
        """With `metrics`, every request (on both of hypercorn's lanes) is counted there."""
        self.app = InFlight(app if metrics is None else Instrumented(app, metrics))
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
        config.keep_alive_max_requests = 1_000_000  # MCP clients keep one connection for a session
        config.h11_max_incomplete_size = 64 * 1024
        # Hypercorn's own limit answers 1009 but leaves the socket hanging; /mcp/ws enforces
        # 1 MiB itself (a clean 1009 close), this is only the memory bound per message.
        config.websocket_max_message_size = 4 * 1024 * 1024
        return config

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._hypercorn_config()
        hypercorn_tcp.install()
        try:
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(
                    functools.partial(serve, self.app, config, shutdown_trigger=self.drain.wait)
                )
                task_status.started(binds)
                await self.drain.wait()
                with trio.move_on_after(self.grace_s):
                    await self.app.wait_idle()
                nursery.cancel_scope.cancel()
        except* OSError as group:
            exc = group.exceptions[0]
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"DENEVA_HTTP_BIND: cannot listen on {self.bind}: {reason}") from None
