"""`deneva bridge URL`: MCP's stdio transport on one side, a remote deneva on the other.

Desktop clients that only launch local stdio servers run `deneva bridge` as their
"server"; it relays each newline-delimited JSON-RPC message from stdin to the daemon
and writes the daemon's messages to stdout, one per line. Logs go to stderr only.

- `ws://` / `wss://` URLs (the daemon's `/mcp/ws`): one WebSocket with the `mcp`
  subprotocol; messages flow both ways as text frames.
- `http://` / `https://` URLs (`/mcp`): each message is a POST (requests run
  concurrently, so a slow tool call does not hold up `ping` or a cancellation).
  The bridge keeps the `Mcp-Session-Id` from `initialize` and the negotiated
  `MCP-Protocol-Version`, mirrors 2026-07-28 requests into the `Mcp-Method` /
  `Mcp-Name` headers, reads JSON or SSE answers, and ends the session (DELETE) when
  stdin closes.

The API key comes from `DENEVA_API_KEY` or `--api-key-file`, never the command line.
A request the daemon cannot answer (unreachable, an HTTP error without a JSON-RPC
body) gets a JSON-RPC error on stdout, so the client is never left waiting.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from deneva.errors import DenevaError

log = logging.getLogger("deneva.bridge")

MAX_LINE_BYTES = 4 * 1024 * 1024
BRIDGE_ERROR = -32000
ACCEPT = "application/json, text/event-stream"


class BridgeError(DenevaError):
    """The bridge cannot start (bad URL, no key, refused)."""


async def read_lines(stream: trio.abc.ReceiveStream, limit: int = MAX_LINE_BYTES) -> AsyncIterator[bytes]:
    """Newline-delimited messages from a byte stream (blank lines skipped)."""
    buffer = bytearray()
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            if buffer.strip():
                yield bytes(buffer)
            return
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end]).strip()
            del buffer[: end + 1]
            if line:
                yield line
        if len(buffer) > limit:
            raise BridgeError(f"a message on stdin is larger than {limit} bytes")


def _request_id(raw: bytes) -> tuple[Any, dict[str, Any] | None]:
    """The request id (None for notifications or unreadable input) and the parsed message."""
    try:
        message = json.loads(raw)
    except ValueError:
        return None, None
    if not isinstance(message, dict):
        return None, None
    return message.get("id"), message


def error_line(id: Any, message: str, code: int = BRIDGE_ERROR) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).encode()


class Output:
    """stdout, one message per line, never interleaved."""

    def __init__(self, write: Callable[[bytes], None]) -> None:
        self._write = write
        self._lock = trio.Lock()

    async def send(self, line: bytes) -> None:
        async with self._lock:
            self._write(line.replace(b"\n", b" ") + b"\n")


def _stdout_writer() -> Callable[[bytes], None]:
    out = sys.stdout.buffer

    def write(data: bytes) -> None:
        out.write(data)
        out.flush()

    return write


def header_safe(value: str) -> str:
    """A header value, or its `=?base64?...?=` form when it is not plain visible ASCII."""
    plain = value and value == value.strip() and all(" " <= c <= "~" for c in value)
    if plain and not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


class HttpRelay:
    def __init__(self, url: str, key: str, output: Output, client: httpx.AsyncClient) -> None:
        self.url = url
        self.key = key
        self.output = output
        self.client = client
        self.session_id: str | None = None
        self.protocol_version: str | None = None

    def headers_for(self, message: dict[str, Any] | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.key}",
            "Accept": ACCEPT,
            "Content-Type": "application/json",
        }
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        params = message.get("params") if message else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        version = meta.get("io.modelcontextprotocol/protocolVersion") if isinstance(meta, dict) else None
        if isinstance(version, str) and message is not None:
            headers["MCP-Protocol-Version"] = version
            headers.pop("Mcp-Session-Id", None)
            method = message.get("method")
            if isinstance(method, str):
                headers["Mcp-Method"] = method
            name = params.get("name") if isinstance(params, dict) else None
            if isinstance(name, str):
                headers["Mcp-Name"] = header_safe(name)
        return headers

    async def relay(self, raw: bytes) -> None:
        id, message = _request_id(raw)
        is_initialize = message is not None and message.get("method") == "initialize"
        try:
            async with self.client.stream(
                "POST", self.url, content=raw, headers=self.headers_for(message)
            ) as r:
                if is_initialize and r.status_code == 200 and r.headers.get("mcp-session-id"):
                    self.session_id = r.headers["mcp-session-id"]
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    async for data in _sse_data(r.aiter_lines()):
                        await self._forward(data, is_initialize)
                    return
                body = await r.aread()
        except httpx.HTTPError as exc:
            if id is not None:
                await self.output.send(
                    error_line(id, f"bridge: cannot reach {self.url}: {type(exc).__name__}")
                )
            return
        if r.status_code == 202 or not body.strip():
            if r.status_code >= 400 and id is not None:
                await self.output.send(error_line(id, f"bridge: the server answered HTTP {r.status_code}"))
            return
        _, answer = _request_id(body)
        if answer is None or ("result" not in answer and "error" not in answer):
            if id is not None:
                await self.output.send(error_line(id, f"bridge: the server answered HTTP {r.status_code}"))
            return
        if answer.get("id") is None and id is not None:
            answer["id"] = id  # an HTTP-level error (401, 403, ...) answers this request
        await self._forward(json.dumps(answer).encode(), is_initialize)

    async def _forward(self, data: bytes, is_initialize: bool) -> None:
        if is_initialize:
            _, answer = _request_id(data)
            result = answer.get("result") if answer else None
            if isinstance(result, dict) and isinstance(result.get("protocolVersion"), str):
                self.protocol_version = result["protocolVersion"]
        await self.output.send(data)

    async def close(self) -> None:
        if self.session_id:
            headers = self.headers_for(None)
            with trio.move_on_after(5):
                try:
                    await self.client.delete(self.url, headers=headers)
                except httpx.HTTPError:
                    pass


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield "\n".join(data).encode()
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data).encode()


async def bridge_http(url: str, key: str, stdin: trio.abc.ReceiveStream, output: Output) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client:
        relay = HttpRelay(url, key, output, client)
        try:
            async with trio.open_nursery() as nursery:
                async for line in read_lines(stdin):
                    _, message = _request_id(line)
                    if message is not None and message.get("method") == "initialize":
                        await relay.relay(line)  # later requests need its session id
                    else:
                        nursery.start_soon(relay.relay, line)
        finally:
            with trio.CancelScope(shield=True):
                await relay.close()


async def bridge_ws(url: str, key: str, stdin: trio.abc.ReceiveStream, output: Output) -> None:
    headers = [(b"authorization", f"Bearer {key}".encode())]
    try:
        async with (
            open_websocket_url(url, subprotocols=["mcp"], extra_headers=headers) as ws,
            trio.open_nursery() as nursery,
        ):

            async def downstream() -> None:
                try:
                    while True:
                        message = await ws.get_message()
                        await output.send(message.encode() if isinstance(message, str) else message)
                except ConnectionClosed as exc:
                    reason = exc.reason
                    code = reason.code if reason is not None else None
                    if code not in (1000, None):
                        log.error("the daemon closed the WebSocket", extra={"code": code})
                nursery.cancel_scope.cancel()

            nursery.start_soon(downstream)
            async for line in read_lines(stdin):
                try:
                    await ws.send_message(line.decode("utf-8", errors="replace"))
                except ConnectionClosed:
                    break
            await ws.aclose()
            nursery.cancel_scope.cancel()
    except HandshakeError as exc:
        status = getattr(exc, "status_code", None)
        raise BridgeError(f"{url}: the WebSocket upgrade was refused (HTTP {status})") from None
    except OSError as exc:
        raise BridgeError(f"{url}: cannot connect ({exc.strerror or exc})") from None


def load_key(key_file: str | None) -> str:
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BridgeError(f"--api-key-file {key_file}: {exc.strerror}") from None
    else:
        key = os.environ.get("DENEVA_API_KEY", "").strip()
    if not key:
        raise BridgeError("no API key: set DENEVA_API_KEY or pass --api-key-file FILE")
    return key


async def run_bridge(url: str, key: str) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    output = Output(_stdout_writer())
    async with stdin:
        if url.startswith(("ws://", "wss://")):
            await bridge_ws(url, key, stdin, output)
        elif url.startswith(("http://", "https://")):
            await bridge_http(url, key, stdin, output)
        else:
            raise BridgeError(f"URL {url!r}: expected ws://, wss://, http:// or https://")
