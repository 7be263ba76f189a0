"""LeanTCPServer: the same bytes as hypercorn's own connection handler in fewer writes, on
the /mcp fast lane and on hypercorn's own path, with the same keep-alive, shutdown and
error behaviour (virtual time, real sockets)."""

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
FAST = "/mcp"  # deneva.http.mcp.MCP_PATH, the fast lane
OTHER = "/other"

# What the app saw: ("disconnect", path) once a waiting request's client went away.
seen: list[tuple[str, str]] = []


async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    kind = scope["query_string"].decode() or "json"

    async def answer(
        status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        head = [(b"content-length", str(len(body)).encode())] if headers is None else headers
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    if kind == "early":  # answers without reading the request body
        await answer(401, b"no")
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    if kind == "json":
        await answer(200, b'{"path":"%s","got":%d}' % (scope["path"].encode(), len(body)))
    elif kind == "empty":
        await answer(204)
    elif kind == "stream":  # chunked: SSE-like events, each its own write
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(3):
            await send({"type": "http.response.body", "body": f"data: {n}\n\n".encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif kind == "slow":  # longer than the keep-alive timeout
        await trio.sleep(KEEP_ALIVE_S * 2)
        await answer(200, b"done")
    elif kind == "fail":
        raise RuntimeError("the app failed before answering")
    elif kind == "wait":  # until the client goes away
        while (await receive())["type"] != "http.disconnect":
            pass
        seen.append(("disconnect", scope["path"]))
    else:
        await answer(404)


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

            stream.send_all = recorded

    return Counting


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
    asgi: Any = app
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(functools.partial(serve, asgi, config, shutdown_trigger=trigger))
        host, port = binds[0].removeprefix("http://").rsplit(":", 1)
        yield host, int(port)
        nursery.cancel_scope.cancel()


async def read_response(stream: trio.SocketStream, buffer: bytearray, head_only: bool = False) -> bytes:
    """One whole response (content-length or chunked), without a parser of our own."""
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = bytes(buffer[:head_end]).lower()
            if head_only or head.startswith(b"http/1.1 1"):
                size = head_end + 4
                break
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
        if not data:
            size = len(buffer)
            break
        buffer.extend(data)
    out = bytes(buffer[:size])
    del buffer[:size]
    return out


def without_date(response: bytes) -> bytes:
    return b"\r\n".join(line for line in response.split(b"\r\n") if not line.lower().startswith(b"date:"))


def get(path: str, kind: str = "") -> bytes:
    query = f"?{kind}" if kind else ""
    return f"GET {path}{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def post(path: str, kind: str = "", body: bytes = b"abc") -> bytes:
    query = f"?{kind}" if kind else ""
    return f"POST {path}{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


CHUNKED = (
    b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
)
CONTINUE = b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"

# (bytes to send, responses to read) on one keep-alive connection
CONVERSATION: list[tuple[bytes, int]] = [
    (get(FAST), 1),
    (get(FAST, "empty"), 1),
    (get(FAST, "stream"), 1),
    (post(FAST), 1),
    (b"HEAD /mcp HTTP/1.1\r\nHost: x\r\n\r\n", 1),
    (post(FAST, "early", b"x" * 5000), 1),  # answered before its body is read: still kept alive
    (CHUNKED, 1),
    (get(FAST + "/") + get(FAST, "empty"), 2),  # pipelined
    (get(FAST) + get(OTHER) + get(FAST), 3),  # the second hands the connection to hypercorn
    (get(FAST), 1),
]


async def converse(handler: type[TCPServer], monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    async with server(handler, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        answers = []
        for request, count in CONVERSATION:
            await stream.send_all(request)
            for _ in range(count):
                answers.append(without_date(await read_response(stream, buffer, request.startswith(b"HEAD"))))
        await stream.aclose()
        return answers


async def one_off(handler: type[TCPServer], monkeypatch: pytest.MonkeyPatch, exchange: list[bytes]) -> bytes:
    """Send each part in turn and read until the server closes: everything it answered."""
    async with server(handler, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        for part in exchange:
            await stream.send_all(part)
        received = bytearray()
        while data := await stream.receive_some(65536):
            received.extend(data)
        await stream.aclose()
        return without_date(bytes(received))


async def test_same_bytes_as_hypercorn_in_one_write_per_response(monkeypatch: pytest.MonkeyPatch) -> None:
    stock_writes: list[bytes] = []
    lean_writes: list[bytes] = []
    stock = await converse(counting(TCPServer, stock_writes), monkeypatch)
    lean = await converse(counting(LeanTCPServer, lean_writes), monkeypatch)
    assert lean == stock
    assert stock[0].startswith(b"HTTP/1.1 200") and stock[0].endswith(b'{"path":"/mcp","got":0}')
    assert stock[3].endswith(b'"got":3}') and stock[5].startswith(b"HTTP/1.1 401")
    assert stock[6].endswith(b'"got":5}') and stock[10].endswith(b'{"path":"/other","got":0}')
    # hypercorn: head, body and an empty end of message per content-length response.
    assert len(stock_writes) >= 3 * 9
    # Lean: one write per content-length response; the stream's head goes with its first
    # event, then one write per event and one for the closing chunk.
    responses = sum(count for _, count in CONVERSATION)
    assert len(lean_writes) == responses - 1 + 4
    assert all(lean_writes)


@pytest.mark.parametrize(
    "exchange",
    [
        pytest.param([b"GET /mcp HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n"], id="malformed-header"),
        pytest.param(
            [b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], id="bad-chunk"
        ),
        pytest.param([get(FAST, "fail")], id="app-fails"),
        pytest.param([b"GET /mcp HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], id="connection-close"),
        pytest.param([b"GET /mcp HTTP/1.0\r\n\r\n"], id="http-1.0"),
        pytest.param([CONTINUE, b"hello"], id="100-continue"),
        pytest.param([b"GET /mcp HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 70_000 + b"\r\n\r\n"], id="huge-head"),
        pytest.param([b"GET /mc"], id="cut-request-line"),
    ],
)
async def test_bad_and_odd_requests_get_hypercorns_answer(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock, exchange: list[bytes]
) -> None:
    stock = await one_off(TCPServer, monkeypatch, exchange)
    lean = await one_off(LeanTCPServer, monkeypatch, exchange)
    assert lean == stock


async def test_a_waiting_request_hears_its_client_go(monkeypatch: pytest.MonkeyPatch) -> None:
    seen.clear()
    async with server(LeanTCPServer, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(get(FAST, "wait"))
        await trio.testing.wait_all_tasks_blocked()
        assert seen == []
        await stream.aclose()
        with trio.fail_after(10):  # a guard, not a wait: the app hears it at once
            while not seen:
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()
    assert seen == [("disconnect", FAST)]


async def test_bytes_streamed_into_a_waiting_request_close_the_connection_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # While a request is handled the lane reads only to hear the client go: it keeps what
    # the client sends meanwhile up to HELD_WHILE_BUSY_LIMIT, then closes the connection
    # (before, it read and kept everything: here 64 MiB).
    seen.clear()
    offered = 64 * 1024 * 1024
    chunk = b"x" * 65536
    sent = 0
    async with server(LeanTCPServer, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(post(FAST, "wait"))
        try:
            while sent < offered:
                await stream.send_all(chunk)
                sent += len(chunk)
        except trio.BrokenResourceError:
            pass  # the server closed the connection
        assert sent < offered, "the server took all 64 MiB"
        with trio.fail_after(10):  # a guard, not a wait: the app hears it at once
            while not seen:
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()
        await stream.aclose()
    assert seen == [("disconnect", FAST)]
    # What the client got into the socket before the close: the limit and kernel buffers.
    assert hypercorn_tcp.HELD_WHILE_BUSY_LIMIT < sent < 16 * 1024 * 1024


@pytest.mark.parametrize("path", [FAST, OTHER])
async def test_an_idle_connection_closes_after_the_keep_alive_timeout_and_not_before(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock, path: str
) -> None:
    async with server(LeanTCPServer, monkeypatch) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        # A request that takes twice the keep-alive timeout: busy is not idle.
        started = trio.current_time()
        await stream.send_all(get(path, "slow"))
        assert (await read_response(stream, buffer)).endswith(b"done")
        assert trio.current_time() - started >= KEEP_ALIVE_S * 2
        # Idle for less than the timeout, then used again: the timer starts over.
        await trio.sleep(KEEP_ALIVE_S - 1)
        await stream.send_all(get(path))
        assert (await read_response(stream, buffer)).endswith(b'"got":0}')
        used_again = trio.current_time()
        assert await stream.receive_some(1024) == b""  # closed by the server...
        idle_for = trio.current_time() - used_again
        assert KEEP_ALIVE_S <= idle_for < KEEP_ALIVE_S + 1  # ...once idle for the timeout
        await stream.aclose()


@pytest.mark.parametrize("path", [FAST, OTHER])
async def test_on_shutdown_an_idle_connection_closes_at_once_and_a_busy_one_after_its_answer(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock, path: str
) -> None:
    stop = trio.Event()
    async with server(LeanTCPServer, monkeypatch, stop) as (host, port):
        idle = await trio.open_tcp_stream(host, port)
        busy = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        await idle.send_all(get(path))
        assert (await read_response(idle, buffer)).endswith(b'"got":0}')
        await busy.send_all(get(path, "slow"))
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
