"""A light load generator for MCP servers over Streamable HTTP (`deneva bench mcp`).

    DENEVA_BENCH_API_KEY=dnv_... python -m deneva.bench.loadgen --url http://127.0.0.1:PORT/mcp \\
        --sessions 50 --rate 500 --duration 10 --peak-duration 10 [--warmup 2] \\
        [--tool get_account_health] [--arguments JSON] [--server-pid PID] --json

It runs in a process of its own, so it never shares the measured server's event loop,
and it is deliberately small: one thread, non-blocking sockets, `select.select` (whose
timeout has microsecond resolution, where epoll's is a whole millisecond), hand-built
HTTP/1.1 requests and an incremental response parser. No HTTP or MCP client library
sits between the clock and the socket.

What it does, per server:

1. Sessions: `--sessions` keep-alive TCP connections, one per MCP session. Each does
   the handshake: POST `initialize` (protocolVersion 2025-11-25), `Mcp-Session-Id`
   read from the response headers, POST `notifications/initialized`; every later
   request carries `Mcp-Session-Id`, `MCP-Protocol-Version` and, given a key,
   `Authorization: Bearer <key>`. Responses may be JSON or SSE (`text/event-stream`),
   with a Content-Length, chunked, or delimited by the connection closing.
2. Open loop (warm-up, then the measured phase): request k is due at
   `start + k / rate` and goes to session `k mod sessions`, whatever happened to the
   earlier ones. A session sends one request at a time (HTTP/1.1 without
   pipelining), so a request due while its session still waits for an earlier
   answer queues behind it; latency always runs from the time the request was *due*,
   not from when it could be sent. A slow server therefore pays for the requests it
   held back (no coordinated omission). `send_lag` is the generator's own lateness
   (sent minus due, for requests whose session was free), so its precision is on
   the record.
3. Peak (closed loop): every session sends its next request as soon as it has the
   previous answer; requests/s is the count of good answers in the window divided
   by the window.

Every answer is checked, not just counted: HTTP 200, a JSON-RPC response with the
request's id and a result, `isError` false and, by default, `structuredContent.cache`
equal to "hit". Anything else, a timeout, or a broken connection is an error, by kind.
Requests still unanswered when the drain time is over are errors too.

With `--json`, stdout is one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import collections
import errno
import json
import math
import os
import resource
import select
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import attrs

PROTOCOL_VERSION = "2025-11-25"
API_KEY_ENV = "DENEVA_BENCH_API_KEY"
CLIENT_INFO = {"name": "deneva-loadgen", "version": "1"}
RECV_SIZE = 256 * 1024
MAX_SESSIONS = 500  # select() handles descriptors below FD_SETSIZE (1024)

Clock = Callable[[], float]


class ProtocolError(ValueError):
    """The server sent something that is not HTTP/1.1 or not an MCP answer."""


class LoadError(Exception):
    """The generator could not run (no connection, a failed handshake); the message says why."""


# -- HTTP/1.1 responses ----------------------------------------------------------------------------


@attrs.frozen
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def keep_alive(self) -> bool:
        return "close" not in self.headers.get("connection", "").lower()


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE = range(7)


class ResponseParser:
    """Incremental HTTP/1.1 response parser: bytes in, complete responses out, in order."""

    def __init__(self, max_head: int = 64 * 1024) -> None:
        self.max_head = max_head
        self._buf = bytearray()
        self._state = _HEAD
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body = bytearray()
        self._remaining = 0

    @property
    def idle(self) -> bool:
        """No partial response buffered."""
        return self._state == _HEAD and not self._buf

    def feed(self, data: bytes) -> list[HttpResponse]:
        self._buf += data
        out: list[HttpResponse] = []
        while True:
            response = self._step()
            if response is None:
                return out
            out.append(response)

    def eof(self) -> HttpResponse | None:
        """The connection closed: the response whose body ran until the close, if any.

        ProtocolError when it closed inside any other response.
        """
        if self._state == _UNTIL_CLOSE:
            self._body += self._buf
            self._buf.clear()
            return self._finish()
        if not self.idle:
            raise ProtocolError("connection closed inside a response")
        return None

    def _finish(self) -> HttpResponse:
        response = HttpResponse(self._status, self._headers, bytes(self._body))
        self._state, self._headers, self._body = _HEAD, {}, bytearray()
        return response

    def _take_body(self) -> bool:
        """Move up to `_remaining` buffered bytes into the body; True once none remain."""
        take = min(self._remaining, len(self._buf))
        self._body += self._buf[:take]
        del self._buf[:take]
        self._remaining -= take
        return not self._remaining

    def _line(self) -> bytes | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > self.max_head:
                raise ProtocolError("line too long")
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        return line

    def _step(self) -> HttpResponse | None:
        while True:
            state = self._state
            if state == _HEAD:
                end = self._buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buf) > self.max_head:
                        raise ProtocolError("response head too large")
                    return None
                head = bytes(self._buf[:end]).decode("latin-1")
                del self._buf[: end + 4]
                self._start(head)
                if self._state == _HEAD:  # interim (1xx) response, or no body at all
                    if 100 <= self._status < 200:
                        continue
                    return self._finish()
            elif state == _LENGTH:
                if not self._take_body():
                    return None
                return self._finish()
            elif state == _CHUNK_SIZE:
                line = self._line()
                if line is None:
                    return None
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size line {line[:40]!r}") from None
                if size < 0:
                    raise ProtocolError("negative chunk size")
                self._remaining = size
                self._state = _CHUNK_DATA if size else _TRAILERS
            elif state == _CHUNK_DATA:
                if not self._take_body():
                    return None
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(self._buf) < 2:
                    return None
                if self._buf[:2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                del self._buf[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                line = self._line()
                if line is None:
                    return None
                if not line:
                    return self._finish()
            else:  # _UNTIL_CLOSE: everything until eof()
                return None

    def _start(self, head: str) -> None:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0][:60]!r}")
        self._status = int(parts[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"bad header line {line[:60]!r}")
            headers[name.strip().lower()] = value.strip()
        self._headers = headers
        self._body = bytearray()
        if 100 <= self._status < 200 or self._status in (204, 304):
            self._state = _HEAD
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            try:
                self._remaining = int(headers["content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            self._state = _LENGTH if self._remaining else _HEAD
        else:
            self._state = _UNTIL_CLOSE


# -- MCP answers ------------------------------------------------------------------------------------


def sse_data(body: bytes) -> list[str]:
    """The data of each complete `message` event of a text/event-stream body (empty data skipped)."""
    out: list[str] = []
    data: list[str] = []
    event = ""
    for line in body.decode("utf-8").splitlines():
        if not line:
            if data and event in ("", "message"):
                text = "\n".join(data)
                if text:
                    out.append(text)
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    return out  # an event not ended by a blank line is incomplete: dropped, as the SSE spec says


def jsonrpc_messages(response: HttpResponse) -> list[Any]:
    """The JSON-RPC messages in a response body, JSON or SSE."""
    kind = response.content_type
    try:
        if kind == "application/json":
            if not response.body.strip():
                return []
            value = json.loads(response.body)
            return value if isinstance(value, list) else [value]
        if kind == "text/event-stream":
            return [json.loads(text) for text in sse_data(response.body)]
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise ProtocolError(f"unparseable {kind} body: {exc}") from None
    raise ProtocolError(f"unexpected content type {kind or '(none)'!r}")


def call_outcome(response: HttpResponse, request_id: int, expect_cache: str | None) -> str | None:
    """None for a good `tools/call` answer, else the kind of error (a short label)."""
    if response.status != 200:
        return f"http {response.status}"
    try:
        messages = jsonrpc_messages(response)
    except ProtocolError:
        return "unparseable body"
    for message in messages:
        if isinstance(message, dict) and message.get("id") == request_id:
            break
    else:
        return "no response for the request id"
    if "error" in message:
        error = message["error"]
        code = error.get("code") if isinstance(error, dict) else None
        return f"jsonrpc error {code}"
    result = message.get("result")
    if not isinstance(result, dict):
        return "no result"
    if result.get("isError"):
        return "tool error"
    if expect_cache is not None:
        structured = result.get("structuredContent")
        cache = structured.get("cache") if isinstance(structured, dict) else None
        if cache != expect_cache:
            return f"cache {cache}"
    return None


# -- the schedule and the per-session queue -----------------------------------------------------------


def due_offsets(rate: float, duration_s: float, sessions: int) -> list[tuple[float, int]]:
    """The open-loop schedule: (seconds after the start, session) for each request."""
    if rate <= 0 or duration_s <= 0 or sessions < 1:
        return []
    count = round(rate * duration_s)
    return [(k / rate, k % sessions) for k in range(count)]


class Backlog:
    """One session's open-loop requests: due ones wait for the connection, in order.

    `due(t, now)` says whether to send now (the connection is free); `done(now)` ends
    the request in flight and returns (its latency from its due time, the due time of
    the next one to send now, if any). Latency is always measured from the due time.
    """

    def __init__(self) -> None:
        self.waiting: collections.deque[float] = collections.deque()
        self.inflight: float | None = None  # due time of the request in flight

    @property
    def busy(self) -> bool:
        return self.inflight is not None

    def due(self, due_at: float) -> bool:
        if self.inflight is None:
            self.inflight = due_at
            return True
        self.waiting.append(due_at)
        return False

    def done(self, now: float) -> tuple[float, float | None]:
        assert self.inflight is not None
        latency = now - self.inflight
        self.inflight = self.waiting.popleft() if self.waiting else None
        return latency, self.inflight


# -- statistics ------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 3),
        "p90_ms": round(percentile(ordered, 90) * 1000, 3),
        "p99_ms": round(percentile(ordered, 99) * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "mean_ms": round(sum(ordered) / len(ordered) * 1000, 3),
    }


class CpuMeter:
    """CPU seconds of this process, of the server's process (Linux /proc) and of the machine."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def sample(self) -> tuple[float, float, float | None, tuple[float, float] | None]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime, self._server(), self._machine()

    def _server(self) -> float | None:
        if self.server_pid is None:
            return None
        try:
            with open(f"/proc/{self.server_pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.tick
        except (OSError, IndexError, ValueError):
            return None

    def _machine(self) -> tuple[float, float] | None:
        try:
            with open("/proc/stat") as handle:
                values = [int(v) for v in handle.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values) / self.tick, idle / self.tick

    @staticmethod
    def report(before: tuple[Any, ...], after: tuple[Any, ...]) -> dict[str, float | None]:
        wall = after[0] - before[0]
        if wall <= 0:
            return {"loadgen_cpu_pct": None, "server_cpu_pct": None, "machine_busy_pct": None}
        server = None if before[2] is None or after[2] is None else (after[2] - before[2]) / wall * 100
        machine = None
        if before[3] is not None and after[3] is not None:
            total = after[3][0] - before[3][0]
            idle = after[3][1] - before[3][1]
            machine = (total - idle) / total * 100 if total > 0 else None
        return {
            "loadgen_cpu_pct": round((after[1] - before[1]) / wall * 100, 1),
            "server_cpu_pct": None if server is None else round(server, 1),
            "machine_busy_pct": None if machine is None else round(machine, 1),
        }


def machine_busy_pct(seconds: float) -> float | None:
    """How busy the machine's CPUs were over the next `seconds` (Linux), in percent."""
    meter = CpuMeter(None)
    before = meter.sample()
    time.sleep(seconds)
    return meter.report(before, meter.sample())["machine_busy_pct"]


@attrs.define
class PhaseStats:
    latencies: list[float] = attrs.Factory(list)
    send_lags: list[float] = attrs.Factory(list)
    errors: collections.Counter[str] = attrs.Factory(collections.Counter)
    queued: int = 0  # open loop: requests that had to wait for their session's connection

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


# -- sessions -------------------------------------------------------------------------------------------


@attrs.frozen
class Target:
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise LoadError(f"--url: expected http://HOST:PORT/PATH, got {url!r}")
        return cls(parts.hostname, parts.port or 80, parts.path or "/")

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _post(target: Target, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Session:
    """One MCP session on one keep-alive connection."""

    def __init__(self, index: int, target: Target, api_key: str | None, timeout_s: float) -> None:
        self.index = index
        self.target = target
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        self.parser = ResponseParser()
        self.session_id: str | None = None
        self.protocol_version: str | None = None  # negotiated by initialize
        self.next_id = 1
        self.out = b""
        self.request_id: int | None = None  # in flight
        self.sent_at = 0.0
        self.got_bytes = False
        self.retried = False
        self.failed: str | None = None  # the request in flight could not be sent
        self.backlog = Backlog()
        self._call_head = b""
        self._call_prefix = b""
        self._call_suffix = b""

    # connection
    def connect(self, blocking: bool = True) -> None:
        self.close()
        try:
            sock = socket.create_connection((self.target.host, self.target.port), timeout=self.timeout_s)
        except OSError as exc:
            raise LoadError(f"cannot connect to {self.target.host_header}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not blocking:
            sock.setblocking(False)
        self.sock = sock
        self.parser = ResponseParser()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def headers(self) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    # the handshake (blocking)
    def _exchange(self, body: dict[str, Any]) -> HttpResponse:
        assert self.sock is not None
        self.sock.sendall(_post(self.target, self.headers(), json.dumps(body).encode()))
        while True:
            data = self.sock.recv(RECV_SIZE)
            if not data:
                last = self.parser.eof()
                if last is None:
                    raise LoadError("the server closed the connection during the handshake")
                self.connect()
                return last
            responses = self.parser.feed(data)
            if responses:
                if not responses[0].keep_alive:
                    self.connect()
                return responses[0]

    def handshake(self) -> float:
        """initialize + notifications/initialized; the seconds the two took."""
        started = time.perf_counter()
        self.connect()
        init = {
            "jsonrpc": "2.0",
            "id": self._take_id(),
            "method": "initialize",
            "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": CLIENT_INFO},
        }
        try:
            response = self._exchange(init)
            if response.status != 200:
                detail = response.body[:200].decode("utf-8", "replace")
                raise LoadError(f"initialize: HTTP {response.status}: {detail}")
            result = next(
                (m.get("result") for m in jsonrpc_messages(response) if isinstance(m, dict) and "id" in m),
                None,
            )
            if not isinstance(result, dict) or not isinstance(result.get("protocolVersion"), str):
                raise LoadError(f"initialize: no result in {response.body[:200]!r}")
            self.protocol_version = result["protocolVersion"]
            self.session_id = response.headers.get("mcp-session-id")
            notified = self._exchange({"jsonrpc": "2.0", "method": "notifications/initialized"})
            if not 200 <= notified.status < 300:
                raise LoadError(f"notifications/initialized: HTTP {notified.status}")
        except (OSError, ProtocolError) as exc:
            raise LoadError(f"handshake: {exc}") from None
        assert self.sock is not None
        self.sock.setblocking(False)
        return time.perf_counter() - started

    def prepare_call(self, tool: str, arguments: dict[str, Any]) -> None:
        """Pre-encode the `tools/call` request; only its id and Content-Length vary."""
        params = json.dumps({"name": tool, "arguments": arguments}, separators=(",", ":")).encode()
        self._call_prefix = b'{"jsonrpc":"2.0","id":'
        self._call_suffix = b',"method":"tools/call","params":' + params + b"}"
        head = _post(self.target, self.headers(), b"")
        self._call_head = head[: head.index(b"Content-Length:")]

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # calls (non-blocking)
    def send_call(self, now: float, retry: bool = False) -> None:
        """Send the next `tools/call` (or the same one again with `retry`), timed from `now`."""
        if not retry:
            self.request_id = self._take_id()
            self.retried = False
        self.sent_at = now
        self.got_bytes = False
        self.failed = None
        body = self._call_prefix + str(self.request_id).encode() + self._call_suffix
        self.out = self._call_head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        try:
            if self.sock is None:
                self.connect(blocking=False)
            self.flush()
        except (OSError, LoadError) as exc:
            if retry or self.retried:
                self.failed = f"send failed: {exc}"
                self.close()
                return
            self.retried = True  # a keep-alive connection the server had just closed
            self.close()
            self.send_call(now, retry=True)

    def flush(self) -> None:
        assert self.sock is not None
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            return
        self.out = self.out[sent:]

    def fileno(self) -> int:
        assert self.sock is not None
        return self.sock.fileno()


# -- the event loop ----------------------------------------------------------------------------------------

# A finished request: (session, response or None, error kind or None, when it finished).
Finished = tuple[Session, HttpResponse | None, str | None, float]


class Driver:
    """Runs phases over a set of handshaken sessions; one thread, select()."""

    def __init__(
        self,
        sessions: list[Session],
        expect_cache: str | None,
        clock: Clock = time.perf_counter,
    ) -> None:
        self.sessions = sessions
        self.expect_cache = expect_cache
        self.clock = clock

    def _wait(self, until: float) -> list[Finished]:
        """Wait for socket events until `until` at the latest; the requests that finished."""
        finished: list[Finished] = []
        readers = []
        for session in self.sessions:
            if session.request_id is None:
                continue
            if session.failed is not None:
                finished.append((session, None, session.failed, self.clock()))
            elif session.sock is not None:
                readers.append(session)
        if finished:
            return finished
        timeout = max(0.0, until - self.clock())
        if not readers:
            if timeout:
                time.sleep(timeout)
            return []
        writers = [s for s in readers if s.out]
        readable, writable, _ = select.select(readers, writers, [], timeout)
        for session in writable:
            try:
                session.flush()
            except OSError:
                pass  # the read side reports the broken connection
        for session in readable:
            item = self._read(session)
            if item is not None:
                finished.append(item)
        return finished

    def _read(self, session: Session) -> Finished | None:
        assert session.sock is not None
        try:
            data = session.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                return self._broken(session, f"socket error {exc.errno}")
            data = b""
        now = self.clock()
        if not data:
            try:
                last = session.parser.eof()
            except ProtocolError:
                last = None
            if last is not None:
                session.close()
                return session, last, None, now
            if not session.got_bytes and not session.retried:
                # A keep-alive connection the server had just closed: send again on a new one.
                session.retried = True
                session.close()
                session.send_call(session.sent_at, retry=True)
                return None
            return self._broken(session, "connection closed")
        session.got_bytes = True
        try:
            responses = session.parser.feed(data)
        except ProtocolError:
            return self._broken(session, "bad HTTP")
        if not responses:
            return None
        if len(responses) > 1:
            return self._broken(session, "unexpected extra response")
        if not responses[0].keep_alive:
            session.close()
        return session, responses[0], None, now

    def _broken(self, session: Session, kind: str) -> Finished:
        session.close()
        return session, None, kind, self.clock()

    def _expired(self, now: float) -> list[Finished]:
        out: list[Finished] = []
        for session in self.sessions:
            if session.request_id is not None and now - session.sent_at > session.timeout_s:
                session.close()
                out.append((session, None, "timeout", now))
        return out

    def _outcome(self, session: Session, response: HttpResponse | None, error: str | None) -> str | None:
        request_id = session.request_id
        session.request_id = None
        if response is None:
            return error or "no response"
        assert request_id is not None
        return call_outcome(response, request_id, self.expect_cache)

    def open_loop(self, rate: float, duration_s: float, drain_s: float) -> tuple[PhaseStats, float, float]:
        """Requests due at fixed intervals; (stats, start, when the last good answer came)."""
        stats = PhaseStats()
        schedule = due_offsets(rate, duration_s, len(self.sessions))
        start = self.clock() + 0.005
        deadline = start + duration_s + drain_s
        k = 0
        last_done = start
        outstanding = 0
        while True:
            now = self.clock()
            while k < len(schedule) and start + schedule[k][0] <= now:
                offset, index = schedule[k]
                session = self.sessions[index]
                k += 1
                outstanding += 1
                due_at = start + offset
                if session.backlog.due(due_at):
                    session.send_call(now)
                    stats.send_lags.append(now - due_at)
                else:
                    stats.queued += 1
            if (k >= len(schedule) and outstanding == 0) or now >= deadline:
                break
            until = start + schedule[k][0] if k < len(schedule) else deadline
            for session, response, error, done in self._wait(until) + self._expired(self.clock()):
                kind = self._outcome(session, response, error)
                latency, next_due = session.backlog.done(done)
                outstanding -= 1
                if kind is None:
                    stats.latencies.append(latency)
                    last_done = max(last_done, done)
                else:
                    stats.errors[kind] += 1
                if next_due is not None:
                    session.send_call(self.clock())
        for session in self.sessions:  # unanswered when the drain time ran out
            if session.backlog.busy:
                stats.errors["unanswered"] += 1 + len(session.backlog.waiting)
                session.backlog = Backlog()
                session.request_id = None
                session.close()
        if k < len(schedule):
            stats.errors["not sent"] += len(schedule) - k
        return stats, start, last_done

    def closed_loop(self, duration_s: float, drain_s: float) -> tuple[PhaseStats, float, float]:
        """Each session sends again as soon as it has an answer; (stats, start, end of the window)."""
        stats = PhaseStats()
        start = self.clock()
        end = start + duration_s
        for session in self.sessions:
            session.send_call(self.clock())
        while any(s.request_id is not None for s in self.sessions):
            now = self.clock()
            if now >= end + drain_s:
                break
            for session, response, error, done in self._wait(min(now + 0.05, end + drain_s)) + self._expired(
                self.clock()
            ):
                sent = session.sent_at
                kind = self._outcome(session, response, error)
                if done <= end:
                    if kind is None:
                        stats.latencies.append(done - sent)
                    else:
                        stats.errors[kind] += 1
                    session.send_call(self.clock())
        for session in self.sessions:
            if session.request_id is not None:
                session.request_id = None
                session.close()
        return stats, start, end


# -- a whole run -----------------------------------------------------------------------------------------


@attrs.frozen
class LoadConfig:
    url: str
    sessions: int = 50
    rate: float = 500.0
    duration_s: float = 10.0
    peak_duration_s: float = 10.0
    warmup_s: float = 2.0
    tool: str = "get_account_health"
    arguments: dict[str, Any] = attrs.Factory(dict)
    api_key: str | None = None
    expect_cache: str | None = "hit"
    timeout_s: float = 10.0
    drain_s: float = 5.0
    server_pid: int | None = None


def _phase_json(
    stats: PhaseStats, seconds: float, cpu: dict[str, float | None], **extra: Any
) -> dict[str, Any]:
    return {
        **extra,
        "seconds": round(seconds, 4),
        "ok": stats.ok,
        "errors": stats.error_count,
        "error_kinds": dict(stats.errors),
        **summary_ms(stats.latencies),
        **cpu,
    }


def run_load(config: LoadConfig, say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Handshake every session, then warm-up, open loop and peak; the figures as JSON."""
    if not 1 <= config.sessions <= MAX_SESSIONS:
        raise LoadError(f"sessions: expected 1 to {MAX_SESSIONS}")
    target = Target.parse(config.url)
    sessions = [Session(i, target, config.api_key, config.timeout_s) for i in range(config.sessions)]
    meter = CpuMeter(config.server_pid)
    try:
        handshakes = [s.handshake() for s in sessions]
        for session in sessions:
            session.prepare_call(config.tool, config.arguments)
        driver = Driver(sessions, config.expect_cache)
        result: dict[str, Any] = {
            "url": config.url,
            "sessions": config.sessions,
            "protocol_version": sessions[0].protocol_version,
            "stateful": sessions[0].session_id is not None,
            "handshake": summary_ms(handshakes),
        }
        if config.warmup_s > 0 and config.rate > 0:
            say(f"warm-up: {config.rate:g} calls/s for {config.warmup_s:g} s")
            warm, _, _ = driver.open_loop(config.rate, config.warmup_s, config.drain_s)
            result["warmup"] = {"ok": warm.ok, "errors": warm.error_count, "error_kinds": dict(warm.errors)}
        if config.rate > 0 and config.duration_s > 0:
            say(
                f"open loop: {config.rate:g} calls/s over {config.sessions} sessions "
                f"for {config.duration_s:g} s"
            )
            before = meter.sample()
            stats, start, last = driver.open_loop(config.rate, config.duration_s, config.drain_s)
            cpu = meter.report(before, meter.sample())
            window = max(config.duration_s, last - start)
            result["open_loop"] = _phase_json(
                stats,
                window,
                cpu,
                offered_per_s=config.rate,
                scheduled=len(due_offsets(config.rate, config.duration_s, config.sessions)),
                achieved_per_s=round(stats.ok / window, 1),
                queued=stats.queued,
                send_lag=summary_ms(stats.send_lags),
            )
        if config.peak_duration_s > 0:
            say(f"peak: closed loop over {config.sessions} sessions for {config.peak_duration_s:g} s")
            before = meter.sample()
            stats, start, end = driver.closed_loop(config.peak_duration_s, config.drain_s)
            cpu = meter.report(before, meter.sample())
            result["peak"] = _phase_json(
                stats, end - start, cpu, requests_per_s=round(stats.ok / (end - start), 1)
            )
        return result
    finally:
        for session in sessions:
            session.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deneva.bench.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--rate", type=float, default=500.0, help="open loop: calls/s offered (0: skip)")
    parser.add_argument("--duration", type=float, default=10.0, help="open loop: seconds")
    parser.add_argument("--peak-duration", type=float, default=10.0, help="closed loop: seconds (0: skip)")
    parser.add_argument("--warmup", type=float, default=2.0, help="open-loop warm-up seconds, not counted")
    parser.add_argument("--tool", default="get_account_health")
    parser.add_argument("--arguments", default="{}", help="the tool's arguments, JSON")
    parser.add_argument("--expect-cache", default="hit", help="structuredContent.cache expected ('' to skip)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request is an error")
    parser.add_argument("--server-pid", type=int, default=None, help="the server's pid, for its CPU use")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    config = LoadConfig(
        url=args.url,
        sessions=args.sessions,
        rate=args.rate,
        duration_s=args.duration,
        peak_duration_s=args.peak_duration,
        warmup_s=args.warmup,
        tool=args.tool,
        arguments=json.loads(args.arguments),
        api_key=os.environ.get(API_KEY_ENV) or None,
        expect_cache=args.expect_cache or None,
        timeout_s=args.timeout,
        server_pid=args.server_pid,
    )

    def say(message: str) -> None:
        print(f"loadgen: {message}", file=sys.stderr, flush=True)

    try:
        result = run_load(config, say)
    except LoadError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
