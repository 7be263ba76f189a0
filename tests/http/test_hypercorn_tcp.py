"""LeanTCPServer: the same bytes as hypercorn's own connection handler in fewer writes, and
the same keep-alive and shutdown behaviour (virtual time, real sockets)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import hypercorn.trio.run
import pytest
import trio
import trio.testing
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.trio.tcp_server import TCPServer

from deneva.http import hypercorn_tcp
from deneva.http.hypercorn_tcp import LeanTCPServer

KEEP_ALIVE_S = 30.0


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    if path == "/json":
        body = b'{"ok":true}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/stream":  # chunked: SSE-like events, each its own write
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(3):
            await send({"type": "http.response.body", "body": f"data: {n}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":  # longer than the keep-alive timeout
        await trio.sleep(KEEP_ALIVE_S * 2)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"done"})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def counting(base: type[TCPServer], writes: list[bytes]) -> type[TCPServer]:
    """`base`, recording every write to the socket."""

    class Counting(base):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            stream: Any = getattr(self, "stream")  # noqa: B009
            send_all = stream.send_all

            async def recorded(data: bytes) -> None:
                writes.append(bytes(data))
                await send_all(data)

            self.stream = _Recording(stream, recorded)

    return Counting


class _Recording:
    def __init__(self, stream: Any, send_all: Callable[[bytes], Any]) -> None:
        self._stream = stream
        self.send_all = send_all

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@asynccontextmanager
async def server(
    handler: type[TCPServer], monkeypatch: pytest.MonkeyPatch, stop: trio.Event | None = None
) -> AsyncIterator[tuple[str, int]]:
    monkeypatch.setattr(hypercorn.trio.run, "TCPServer", handler)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.graceful_timeout = KEEP_ALIVE_S * 4  # longer than /slow takes
    trigger = (stop if stop is not None else trio.Event()).wait
    async with trio.open_nursery() as nursery:
        asgi: Any = app
        binds = await nursery.start(functools.partial(serve, asgi, config, shutdown_trigger=trigger))
        host, port = binds[0].removeprefix("http://").rsplit(":", 1)
        yield host, int(port)
        nursery.cancel_scope.cancel()


async def read_response(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    """One whole response (content-length or chunked), without a parser of our own."""
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = bytes(buffer[:head_end]).lower()
            if b"transfer-encoding: chunked" in head:
                end = buffer.find(b"\r\n0\r\n\r\n", head_end)
                if end >= 0:
                    size = end + len(b"\r\n0\r\n\r\n")
                    break
            else:
                length = 0
                for line in head.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if len(buffer) >= head_end + 4 + length:
                    size = head_end + 4 + length
                    break
        data = await stream.receive_some(65536)
        assert data, "the server closed the connection mid-response"
        buffer.extend(data)
    out = bytes(buffer[:size])
    del buffer[:size]
    return out


def without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:"))


REQUESTS = [
    b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
]


async def exchange(handler: type[TCPServer], monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    async with server(handler, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        answers = []
        for request in REQUESTS:
            await stream.send_all(request)
            answers.append(without_date(await read_response(stream, buffer)))
        await stream.aclose()
        return answers


async def test_same_bytes_as_hypercorn_in_one_write_per_response(monkeypatch: pytest.MonkeyPatch) -> None:
    stock_writes: list[bytes] = []
    lean_writes: list[bytes] = []
    stock = await exchange(counting(TCPServer, stock_writes), monkeypatch)
    lean = await exchange(counting(LeanTCPServer, lean_writes), monkeypatch)
    assert lean == stock
    assert stock[0].startswith(b"HTTP/1.1 200") and stock[0].endswith(b'{"ok":true}')
    # hypercorn: head, body and an empty end of message for each content-length response.
    assert len(stock_writes) >= 3 * len(REQUESTS)
    # Lean: one write per content-length response; the stream's head goes with its first
    # event, then one write per event and one for the closing chunk.
    assert len(lean_writes) == 4 + 3 + 1
    assert all(lean_writes)


async def test_an_idle_connection_closes_after_the_keep_alive_timeout_and_not_before(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    async with server(LeanTCPServer, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        # A request that takes twice the keep-alive timeout: busy is not idle.
        started = trio.current_time()
        await stream.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(stream, buffer)).endswith(b"done")
        answered = trio.current_time()
        assert answered - started >= KEEP_ALIVE_S * 2
        # Idle for less than the timeout, then used again: the timer starts over.
        await trio.sleep(KEEP_ALIVE_S - 1)
        await stream.send_all(REQUESTS[0])
        assert (await read_response(stream, buffer)).endswith(b'{"ok":true}')
        used_again = trio.current_time()
        assert await stream.receive_some(1024) == b""  # closed by the server...
        idle_for = trio.current_time() - used_again
        assert KEEP_ALIVE_S <= idle_for < KEEP_ALIVE_S + 1  # ...once idle for the timeout
        await stream.aclose()


async def test_on_shutdown_an_idle_connection_closes_at_once_and_a_busy_one_after_its_answer(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    stop = trio.Event()
    async with server(LeanTCPServer, monkeypatch, stop) as (host, port):
        idle = await trio.open_tcp_stream(host, port)
        busy = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        await idle.send_all(REQUESTS[0])
        assert (await read_response(idle, buffer)).endswith(b'{"ok":true}')
        await busy.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await trio.sleep(1)  # the slow request is under way
        stopped = trio.current_time()
        stop.set()
        assert await idle.receive_some(1024) == b""
        assert trio.current_time() - stopped < 1
        busy_buffer = bytearray()
        assert (await read_response(busy, busy_buffer)).endswith(b"done")
        assert await busy.receive_some(1024) == b""
        await idle.aclose()
        await busy.aclose()


def test_install_makes_hypercorns_trio_worker_use_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypercorn.trio.run, "TCPServer", TCPServer)
    hypercorn_tcp.install()
    assert getattr(hypercorn.trio.run, "TCPServer") is LeanTCPServer  # noqa: B009
