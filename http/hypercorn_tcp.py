"""Hypercorn's trio connection handler, leaner per request, with a fast lane for /mcp.

hypercorn 0.18's `TCPServer` does, for every HTTP/1.1 request on a keep-alive connection:

- three socket sends per response (the head, the body, and an empty end of message for
  a response with a content-length, each under a lock and a shielded cancel scope);
- a new task for the keep-alive timer (`nursery.start`, which waits for the task to
  start) when the response ends, cancelled again when the next request arrives;
- a new cancel scope around every receive, even with no read timeout;
- and, in its protocol layer, a stream object, a memory channel and a task per request,
  with every ASGI message passed through both.

`LeanTCPServer` keeps hypercorn (listener, lifespan, shutdown, TLS, HTTP/2, WebSockets)
and changes two things:

1. **The fast lane.** A plain-HTTP connection whose requests are for `/mcp` (the MCP
   endpoint: its clients keep one connection per session for it) is served by a short
   request cycle here: h11 (hypercorn's own HTTP/1.1 parser) parses each request, the
   ASGI app runs in the connection's task, and the response goes out in one write. The
   first request for anything else (health probes, admin, events, a WebSocket upgrade,
   HTTP/2) hands the connection, with the bytes not yet parsed, to hypercorn's protocol
   for good. On `deneva bench mcp` this took the daemon from about 1,460 to about
   1,980 calls/s (2-core VM, 2026-11-23). The lane keeps hypercorn's behaviour: the
   same response bytes (its date and server headers, a body suppressed for HEAD, 204
   and 304), 100-continue, the keep-alive timeout, `keep_alive_max_requests`, a 500 when
   the app fails before answering, h11's error status when the request is malformed,
   `http.disconnect` when the client goes, and a close after the response once the
   server is shutting down. Unlike hypercorn (which stops reading until the response is
   done, and so cannot hear the client go), it keeps reading while a request is handled,
   to cancel a waiting call whose client went, but keeps at most HELD_WHILE_BUSY_LIMIT
   of what arrives (the next request) and closes the connection past it.
2. **Hypercorn's own path, leaner:** a final response's head goes out with the bytes
   that follow it, empty sends are skipped, one keep-alive timer task per connection has
   its deadline moved, and receives need no scope when there is no read timeout.

`install()` makes hypercorn's trio worker use it (hypercorn looks the class up in
`hypercorn.trio.run` when it serves); hypercorn is pinned to 0.18 in pyproject.toml and
tests compare the bytes on the wire with hypercorn's own handler.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import unquote

import h11
import hypercorn.trio.run
import trio
from hypercorn.events import Closed, Event, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.typing import ConnectionState
from hypercorn.utils import build_and_validate_headers, parse_socket_addr, suppress_body

from deneva.http.mcp import MCP_PATH

# Requests for these paths (query and trailing slash aside) take the fast lane.
FAST_PATHS = frozenset({MCP_PATH.encode()})
# A body left unread by an early answer is read and dropped up to this size; past it the
# connection closes instead.
SKIP_BODY_LIMIT = 1024 * 1024
# While a request is handled, after its body, the lane reads only to hear the client go;
# what the client sends meanwhile (its next request) is kept up to this size, and past it
# the connection closes: a client streaming bytes into a long call must not fill memory.
HELD_WHILE_BUSY_LIMIT = 64 * 1024

# A final response's status line (1xx answers, such as 100 Continue or 101 Switching
# Protocols, go out at once: the peer waits for them).
_FINAL_HEAD = tuple(f"HTTP/1.1 {digit}".encode() for digit in "2345")


class LeanTCPServer(TCPServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held = b""  # a final response's head, sent with the bytes that follow it
        self._idle = True
        self._idle_scope: trio.CancelScope | None = None
        self._now_idle = trio.Event()
        self._fast = False  # serving the fast lane (hypercorn's protocol not made yet)
        self._fast_requests = 0

    # -- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        if not isinstance(self.stream, trio.SocketStream) or self.config.read_timeout:
            await super().run()  # TLS (ALPN, HTTP/2) and read timeouts: hypercorn's own way
            return
        try:
            socket = self.stream.socket
            client = parse_socket_addr(socket.family, socket.getpeername())
            server = parse_socket_addr(socket.family, socket.getsockname())
            async with TaskGroup() as task_group:
                self._task_group = task_group
                self._fast = True
                await self.idle_task.restart(task_group, self._idle_timeout)
                rest = await self._serve_fast(client, server)
                if rest is None:
                    await self.idle_task.stop()
                    return
                self._fast = False
                # Something else than the fast lane: hypercorn serves the connection from here.
                self.protocol = ProtocolWrapper(
                    self.app,
                    self.config,
                    self.context,
                    task_group,
                    ConnectionState(self.state.copy()),
                    False,
                    client,
                    server,
                    self.protocol_send,
                    "http/1.1",
                )
                await self.protocol.initiate()
                if rest:
                    await self.protocol.handle(RawData(rest))
                await self._read_data()
        except OSError:
            pass
        finally:
            await self._close()

    async def _initiate_server_close(self) -> None:
        if self._fast:
            await self.stream.aclose()  # the fast lane's receive ends with it
        else:
            await super()._initiate_server_close()

    # -- the fast lane -------------------------------------------------------------------

    async def _receive_some(self) -> bytes:
        """The next bytes from the client; b"" once it closed (or the server closed it)."""
        try:
            return bytes(await self.stream.receive_some(MAX_RECV))
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return b""

    async def _write(self, data: bytes) -> bool:
        """Send `data` whole (never cut by a cancel); False once the client is gone."""
        async with self.send_lock:
            try:
                with trio.CancelScope(shield=True):
                    await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False
        return True

    def _is_fast(self, request_line: bytes) -> bool:
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return False
        return parts[1].partition(b"?")[0].rstrip(b"/") in FAST_PATHS

    async def _serve_fast(self, client: Any, server: Any) -> bytes | None:
        """Serve fast-lane requests; None when the connection is over, else the bytes not
        yet parsed, which start a request for hypercorn's protocol."""
        pending = b""
        limit = self.config.h11_max_incomplete_size
        while True:
            line_end = pending.find(b"\r\n")
            while line_end < 0:
                if len(pending) > limit:
                    return pending  # hypercorn answers it (431)
                data = await self._receive_some()
                if not data:
                    return None
                pending += data
                line_end = pending.find(b"\r\n")
            if not self._is_fast(pending[:line_end]):
                return pending
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limit)
            conn.receive_data(pending)
            keep = await self._fast_request(conn, client, server)
            if not keep:
                return None
            pending, closed = conn.trailing_data
            pending = bytes(pending)
            if closed:
                return None

    async def _fast_request(self, conn: h11.Connection, client: Any, server: Any) -> bool:
        """One request and its response; whether the connection can carry another."""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._fast_error(conn, exc.error_status_hint)
                return False
            if event is not h11.NEED_DATA:
                break
            conn.receive_data(await self._receive_some())
        if not isinstance(event, h11.Request):
            return False  # the client closed
        self._set_idle(False)
        self._fast_requests += 1
        exchange = _Exchange(self, conn, event, client, server)
        started = time.time()
        app: Any = self.app  # hypercorn's wrapper: (scope, receive, send, sync_spawn, call_soon)
        try:
            await app(
                exchange.scope, exchange.receive, exchange.send, trio.to_thread.run_sync, trio.from_thread.run
            )
        except Exception:
            await self.config.log.exception("Error in ASGI Framework")
        if self.config.log.access_logger is not None:
            await self.config.log.access(exchange.scope, exchange.response, time.time() - started)
        if not exchange.done:
            if exchange.status is None and not exchange.gone:
                await self._fast_error(conn, exchange.broken or 500)
            return False  # a response cut short cannot be followed by another
        # Answered before reading the whole body (a 401, say): read the rest, as hypercorn
        # does, so the connection can carry the next request.
        if conn.their_state is h11.SEND_BODY and not exchange.gone and not await self._skip_body(conn):
            return False
        self._set_idle(True)
        if exchange.gone or self.context.terminated.is_set():
            return False
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _skip_body(self, conn: h11.Connection) -> bool:
        """Read and drop the rest of a request body; False when that is not worth it (more
        than SKIP_BODY_LIMIT, not within the keep-alive timeout, or malformed)."""
        skipped = 0
        with trio.move_on_after(self.config.keep_alive_timeout):
            while skipped <= SKIP_BODY_LIMIT:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError:
                    return False
                if event is h11.NEED_DATA:
                    data = await self._receive_some()
                    if not data:
                        return False
                    conn.receive_data(data)
                elif isinstance(event, h11.Data):
                    skipped += len(event.data)
                else:
                    return isinstance(event, h11.EndOfMessage)
        return False

    async def _fast_error(self, conn: h11.Connection, status: int) -> None:
        """hypercorn's answer to a request it cannot serve: empty, and the connection closes."""
        headers = [(b"content-length", b"0"), (b"connection", b"close")]
        try:
            data = conn.send(h11.Response(status_code=status, headers=headers + self._extra_headers()))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        await self._write(data)

    def _extra_headers(self) -> list[tuple[bytes, bytes]]:
        headers = self.config.response_headers("h11")
        if self._fast_requests >= self.config.keep_alive_max_requests:
            headers.append((b"connection", b"close"))
        return headers

    # -- sends ------------------------------------------------------------------------

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData):
            data = event.data
            if self._held:
                data, self._held = self._held + data, b""
            elif data.startswith(_FINAL_HEAD) and data.endswith(b"\r\n\r\n"):
                self._held = data
                return
            if data:
                await super().protocol_send(RawData(data=data))
        elif isinstance(event, Updated):
            self._set_idle(event.idle)
        else:
            if isinstance(event, Closed):
                self._held = b""  # the connection is going: nothing more can be written
            await super().protocol_send(event)

    # -- the keep-alive timer ------------------------------------------------------------

    def _set_idle(self, idle: bool) -> None:
        self._idle = idle
        if idle:
            self._now_idle.set()
        else:
            self._now_idle = trio.Event()
        if self._idle_scope is not None:
            self._idle_scope.deadline = self._idle_deadline()

    def _idle_deadline(self) -> float:
        return trio.current_time() + self.config.keep_alive_timeout if self._idle else math.inf

    async def _idle_timeout(self) -> None:
        # One task per connection (hypercorn starts it once; `Updated` only moves the
        # deadline): the connection closes once it has been idle for keep_alive_timeout,
        # or once it is idle after the worker began to terminate.
        with trio.CancelScope(deadline=self._idle_deadline()) as scope:
            self._idle_scope = scope
            await self.context.terminated.wait()
            while not self._idle:
                scope.deadline = math.inf
                await self._now_idle.wait()
        self._idle_scope = None
        with trio.CancelScope(shield=True):
            await self._initiate_server_close()

    # -- receives ------------------------------------------------------------------------

    async def _read_data(self) -> None:
        if self.config.read_timeout:
            await super()._read_data()
            return
        while True:
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())


class _Exchange:
    """One fast-lane request as the ASGI app sees it (`receive`, `send`)."""

    def __init__(
        self, owner: LeanTCPServer, conn: h11.Connection, request: h11.Request, client: Any, server: Any
    ) -> None:
        self.owner = owner
        self.conn = conn
        raw_path, _, query = request.target.partition(b"?")
        self.method = request.method.decode("ascii").upper()
        self.scope: Any = {
            "type": "http",
            "http_version": request.http_version.decode(),
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": self.method,
            "scheme": "http",
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": owner.config.root_path,
            "headers": list(request.headers),
            "client": client,
            "server": server,
            "state": owner.state.copy(),
            "extensions": {},
        }
        self.response: Any = None
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.suppress = False
        self.head_sent = False
        self.done = False  # the whole response went out
        self.body_read = False
        self.gone = False  # the client went away
        self.broken = 0  # h11's status for a malformed request body
        self.held = 0  # bytes received after the body while the request is handled

    async def receive(self) -> dict[str, Any]:
        if self.done or self.gone or self.broken:
            return {"type": "http.disconnect"}
        conn = self.conn
        while not self.body_read:
            if conn.they_are_waiting_for_100_continue:  # as hypercorn: when the body is asked for
                head = conn.send(
                    h11.InformationalResponse(
                        status_code=100, headers=self.owner.config.response_headers("h11")
                    )
                )
                await self.owner._write(head)
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.broken = exc.error_status_hint
                return {"type": "http.disconnect"}
            if event is h11.NEED_DATA:
                conn.receive_data(await self.owner._receive_some())
            elif isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            elif isinstance(event, h11.EndOfMessage):
                self.body_read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            else:  # the client closed mid-body
                self.gone = True
                return {"type": "http.disconnect"}
        # The body is all here: wait for the client to go (bytes it sends meanwhile are
        # the next request, kept for it, within HELD_WHILE_BUSY_LIMIT).
        while data := await self.owner._receive_some():
            conn.receive_data(data)
            self.held += len(data)
            if self.held > HELD_WHILE_BUSY_LIMIT:
                self.gone = True
                await self.owner.stream.aclose()  # its answer, if any, would not be read
                return {"type": "http.disconnect"}
        conn.receive_data(b"")
        self.gone = True
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self.status is None:
            self.response = message
            self.status = int(message["status"])
            self.headers = build_and_validate_headers(message.get("headers", []))
            self.suppress = suppress_body(self.method, self.status)
        elif kind == "http.response.body" and self.status is not None and not self.done:
            conn = self.conn
            out = b""
            if not self.head_sent:
                self.head_sent = True
                out = conn.send(
                    h11.Response(status_code=self.status, headers=self.headers + self.owner._extra_headers())
                )
            body = message.get("body", b"")
            if body and not self.suppress:
                out += conn.send(h11.Data(data=body))
            if not message.get("more_body", False):
                out += conn.send(h11.EndOfMessage())
                self.done = True
            if out and not self.gone and not await self.owner._write(out):
                self.gone = True


def install() -> None:
    """Make hypercorn's trio worker serve connections with LeanTCPServer."""
    setattr(hypercorn.trio.run, "TCPServer", LeanTCPServer)  # noqa: B010
