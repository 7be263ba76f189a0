"""The MCP load generator (`deneva bench mcp`): its HTTP and MCP parsing, its open-loop
schedule and accounting, and whole runs against a tiny local MCP server.

Never timed (SPEC §13: benchmarks are programs, not timed tests): the assertions are on
counts and on what the server saw, never on how fast anything was. The load generator
does not need the `mcp` package, so none of this does either.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trio

from deneva.bench import loadgen
from deneva.bench.engine import ServerInfo
from deneva.bench.loadgen import (
    Backlog,
    HttpResponse,
    LoadConfig,
    ProtocolError,
    ResponseParser,
    call_outcome,
    due_offsets,
    jsonrpc_messages,
    run_load,
    sse_data,
)
from deneva.bench.mcp import (
    ACCOUNT,
    PLATFORM,
    TENANT,
    Report,
    ServerResult,
    combine_rounds,
    issue_access_token,
    probe_call,
)
from deneva.cli import main as cli_main
from tests.mcp.daemon_fixture import TenantSpec, running_daemon

API_KEY = "dnv_0123abcd_" + "k" * 40

# -- HTTP responses -------------------------------------------------------------------------------

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
    b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"
)
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
EMPTY = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


def test_parser_reads_length_chunked_and_empty_bodies_back_to_back() -> None:
    parser = ResponseParser()
    out = parser.feed(LENGTH + CHUNKED + EMPTY + b"HTTP/1.1 204 No Content\r\n\r\n")

    assert [(r.status, r.body) for r in out] == [
        (200, b"{}"),
        (200, b"hello, world"),
        (202, b""),
        (204, b""),
    ]
    assert out[1].content_type == "text/event-stream"
    assert parser.idle


def test_parser_gives_the_same_responses_whatever_the_split() -> None:
    stream = LENGTH + CHUNKED + b"HTTP/1.1 100 Continue\r\n\r\n" + EMPTY
    whole = [(r.status, r.headers, r.body) for r in ResponseParser().feed(stream)]
    for cut in range(1, len(stream)):  # every split into two reads
        parser = ResponseParser()
        parts = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert [(r.status, r.headers, r.body) for r in parts] == whole
    parser = ResponseParser()  # and one byte at a time
    one_by_one = [r for i in range(len(stream)) for r in parser.feed(stream[i : i + 1])]
    assert [(r.status, r.headers, r.body) for r in one_by_one] == whole
    assert [status for status, _, _ in whole] == [200, 200, 202]  # the 100 is skipped


def test_parser_body_until_close_and_broken_streams() -> None:
    parser = ResponseParser()
    assert parser.feed(b'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"a":') == []
    assert parser.feed(b"1}") == []
    last = parser.eof()
    assert last is not None and last.body == b'{"a":1}' and not last.keep_alive

    cut = ResponseParser()
    cut.feed(LENGTH[:-1])
    with pytest.raises(ProtocolError):
        cut.eof()
    assert ResponseParser().eof() is None
    for garbage in (b"SPDY/3 200 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"):
        with pytest.raises(ProtocolError):
            ResponseParser().feed(garbage)
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


# -- MCP answers -------------------------------------------------------------------------------------


def _hit(request_id: int, cache: str = "hit") -> dict[str, Any]:
    structured = {
        "data": {"report": "account_health"},
        "cache": cache,
        "fetchedAt": "2025-01-01T00:00:00+00:00",
    }
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {
            "content": [{"type": "text", "text": json.dumps(structured)}],
            "structuredContent": structured,
            "isError": False,
        },
    }


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def test_sse_bodies_give_their_message_events() -> None:
    body = (
        b"id: prime\r\ndata:\r\n\r\n"  # a priming event: no data
        b": a comment\n"
        b'event: message\ndata: {"a":\ndata: 1}\n\n'
        b'event: other\ndata: {"ignored":true}\n\n'
        b'data: {"b":2}\n\n'
        b'data: {"unterminated":true}'
    )
    assert sse_data(body) == ['{"a":\n1}', '{"b":2}']
    response = HttpResponse(200, {"content-type": "text/event-stream; charset=utf-8"}, body)
    assert jsonrpc_messages(response) == [{"a": 1}, {"b": 2}]


def test_jsonrpc_messages_from_json_bodies() -> None:
    assert jsonrpc_messages(_json(200, {"id": 1})) == [{"id": 1}]
    assert jsonrpc_messages(_json(200, [{"id": 1}, {"id": 2}])) == [{"id": 1}, {"id": 2}]
    assert jsonrpc_messages(HttpResponse(202, {"content-type": "application/json"}, b"")) == []
    with pytest.raises(ProtocolError):
        jsonrpc_messages(HttpResponse(200, {"content-type": "text/html"}, b"<p>"))
    with pytest.raises(ProtocolError):
        jsonrpc_messages(HttpResponse(200, {"content-type": "application/json"}, b"{not json"))


def test_call_outcome_checks_every_part_of_the_answer() -> None:
    assert call_outcome(_json(200, _hit(7)), 7, "hit") is None
    sse = HttpResponse(
        200, {"content-type": "text/event-stream"}, f"data: {json.dumps(_hit(7))}\n\n".encode()
    )
    assert call_outcome(sse, 7, "hit") is None
    assert call_outcome(_json(500, {}), 7, "hit") == "http 500"
    assert call_outcome(_json(200, _hit(8)), 7, "hit") == "no response for the request id"
    assert call_outcome(_json(200, {"id": 7, "error": {"code": -32602}}), 7, "hit") == "jsonrpc error -32602"
    tool_error = {"id": 7, "result": {"content": [], "isError": True}}
    assert call_outcome(_json(200, tool_error), 7, "hit") == "tool error"
    assert call_outcome(_json(200, _hit(7, "miss")), 7, "hit") == "cache miss"
    assert call_outcome(_json(200, _hit(7, "miss")), 7, None) is None
    assert call_outcome(HttpResponse(200, {"content-type": "application/json"}, b"["), 7, None) == (
        "unparseable body"
    )


# -- the schedule and the backlog ---------------------------------------------------------------------


def test_open_loop_schedule_is_evenly_spaced_and_round_robin() -> None:
    schedule = due_offsets(500, 1.0, 50)

    assert len(schedule) == 500
    gaps = {round(b[0] - a[0], 9) for a, b in itertools.pairwise(schedule)}
    assert gaps == {0.002}
    assert [session for _, session in schedule[:52]] == [*range(50), 0, 1]
    per_session = [offset for offset, session in schedule if session == 3]
    assert len(per_session) == 10
    assert {round(b - a, 9) for a, b in itertools.pairwise(per_session)} == {0.1}
    assert due_offsets(0, 1.0, 5) == [] and due_offsets(10, 1.0, 0) == []


def test_latency_runs_from_the_due_time_even_for_calls_that_waited() -> None:
    backlog = Backlog()
    assert backlog.due(0.0) is True  # free connection: send now
    assert backlog.due(0.1) is False  # the first answer is late: this one waits
    assert backlog.due(0.2) is False

    latency, next_due = backlog.done(0.25)  # the first answer, 250 ms after it was due
    assert latency == pytest.approx(0.25) and next_due == 0.1
    latency, next_due = backlog.done(0.27)  # the second was due at 0.1: 170 ms, not 20
    assert latency == pytest.approx(0.17) and next_due == 0.2
    latency, next_due = backlog.done(0.29)
    assert latency == pytest.approx(0.09) and next_due is None
    assert not backlog.busy


def test_percentiles_and_summary() -> None:
    assert loadgen.percentile([float(v) for v in range(1, 101)], 99) == 99.0
    summary = loadgen.summary_ms([0.001, 0.002, 0.003])
    assert summary["p50_ms"] == 2.0 and summary["max_ms"] == 3.0
    assert loadgen.summary_ms([])["p99_ms"] is None


# -- whole runs against a tiny MCP server ----------------------------------------------------------------


class TinyMcp:
    """A threaded HTTP/1.1 MCP server: sessions, JSON or SSE answers, optional faults."""

    def __init__(self, *, sse: bool = False, cache: str = "hit", close_every: int = 0) -> None:
        self.sse = sse
        self.cache = cache
        self.close_every = close_every
        self.lock = threading.Lock()
        self.sessions: dict[str, list[str]] = {}  # session id -> methods, in order
        self.bad_headers: list[str] = []
        self.calls = 0
        tiny = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                tiny.answer(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/mcp"

    def answer(self, handler: BaseHTTPRequestHandler, message: dict[str, Any]) -> None:
        headers = handler.headers
        if headers.get("Authorization") != f"Bearer {API_KEY}":
            self._send(handler, 401, b"{}")
            return
        if "application/json" not in headers.get("Accept", "") or "text/event-stream" not in headers.get(
            "Accept", ""
        ):
            self._send(handler, 406, b"{}")
            return
        method = message.get("method", "")
        if method == "initialize":
            sid = f"s{len(self.sessions)}"
            with self.lock:
                self.sessions[sid] = ["initialize"]
            result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {}}
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
            self._send(handler, 200, body, extra={"Mcp-Session-Id": sid})
            return
        sid = headers.get("Mcp-Session-Id", "")
        with self.lock:
            if sid not in self.sessions or headers.get("MCP-Protocol-Version") != loadgen.PROTOCOL_VERSION:
                self.bad_headers.append(f"{method} {sid!r} {headers.get('MCP-Protocol-Version')!r}")
                self._send(handler, 400, b"{}")
                return
            self.sessions[sid].append(method)
            self.calls += method == "tools/call"
            close = self.close_every and method == "tools/call" and self.calls % self.close_every == 0
        if "id" not in message:
            self._send(handler, 202, b"")
            return
        body = json.dumps(_hit(message["id"], self.cache)).encode()
        if self.sse:
            self._send_sse(handler, body)
        else:
            self._send(handler, 200, body, extra={"Connection": "close"} if close else None)
        if close:
            handler.close_connection = True

    def _send(
        self, handler: BaseHTTPRequestHandler, status: int, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _send_sse(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for chunk in (b"id: 1\ndata:\n\n", b"event: message\ndata: " + body + b"\n\n"):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def tiny_factory() -> Iterator[Any]:
    servers: list[TinyMcp] = []

    def make(**kwargs: Any) -> TinyMcp:
        server = TinyMcp(**kwargs)
        server.thread.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.server.shutdown()
        server.server.server_close()


def _config(url: str, **overrides: Any) -> LoadConfig:
    settings: dict[str, Any] = {
        "url": url,
        "sessions": 3,
        "rate": 200.0,
        "duration_s": 0.1,
        "peak_duration_s": 0.1,
        "warmup_s": 0.0,
        "arguments": {"platform": "meta", "dateRange": "last_7_days"},
        "api_key": API_KEY,
        "timeout_s": 10.0,
    }
    settings.update(overrides)
    return LoadConfig(**settings)


@pytest.mark.parametrize("sse", [False, True], ids=["json", "sse"])
def test_a_run_handshakes_every_session_and_checks_every_answer(tiny_factory: Any, sse: bool) -> None:
    tiny = tiny_factory(sse=sse)

    result = run_load(_config(tiny.url, warmup_s=0.05))

    assert tiny.bad_headers == []
    assert sorted(tiny.sessions) == ["s0", "s1", "s2"]
    for methods in tiny.sessions.values():
        assert methods[:2] == ["initialize", "notifications/initialized"]
        assert set(methods[2:]) == {"tools/call"}
    assert result["stateful"] is True and result["protocol_version"] == loadgen.PROTOCOL_VERSION
    assert result["warmup"] == {"ok": 10, "errors": 0, "error_kinds": {}}
    loop = result["open_loop"]
    assert loop["scheduled"] == 20 and loop["ok"] == 20 and loop["errors"] == 0
    assert loop["p50_ms"] is not None and loop["p50_ms"] <= loop["p99_ms"] <= loop["max_ms"]
    peak = result["peak"]
    assert peak["ok"] >= 1 and peak["errors"] == 0 and peak["requests_per_s"] > 0
    # Warm-up and open loop, the peak's counted answers, and at most one a session answered
    # after the peak window closed (served, not counted).
    assert 10 + 20 + peak["ok"] <= tiny.calls <= 10 + 20 + peak["ok"] + 3


def test_wrong_answers_are_counted_as_errors_by_kind(tiny_factory: Any) -> None:
    tiny = tiny_factory(cache="miss")

    result = run_load(_config(tiny.url, peak_duration_s=0.0))

    assert result["open_loop"]["ok"] == 0
    assert result["open_loop"]["error_kinds"] == {"cache miss": 20}
    assert "peak" not in result


def test_connections_the_server_closes_are_reopened(tiny_factory: Any) -> None:
    tiny = tiny_factory(close_every=4)

    result = run_load(_config(tiny.url, rate=300.0, peak_duration_s=0.0))

    assert result["open_loop"]["ok"] == 30 and result["open_loop"]["errors"] == 0
    assert tiny.bad_headers == []


def test_a_refused_handshake_is_an_error_that_says_why(tiny_factory: Any) -> None:
    tiny = tiny_factory()

    with pytest.raises(loadgen.LoadError, match="initialize: HTTP 401"):
        run_load(_config(tiny.url, api_key="dnv_wrong"))


def test_the_loadgen_command_prints_json(tiny_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = tiny_factory()
    argv = ["--url", tiny.url, "--sessions", "2", "--rate", "100", "--duration", "0.1"]
    argv += ["--peak-duration", "0", "--warmup", "0", "--json"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(loadgen.API_KEY_ENV, API_KEY)
        assert loadgen.main(argv) == 0

    result = json.loads(capsys.readouterr().out)
    assert result["sessions"] == 2 and result["open_loop"]["ok"] == 10


# -- the report and the command line ------------------------------------------------------------------------


def _measured(name: str, peak: float, p50: float, p99: float) -> ServerResult:
    loop = {
        "offered_per_s": 500.0,
        "achieved_per_s": 500.0,
        "p50_ms": p50,
        "p90_ms": p50,
        "p99_ms": p99,
        "max_ms": p99,
        "errors": 0,
        "error_kinds": {},
        "queued": 0,
        "send_lag": {"p99_ms": 0.1},
        "server_cpu_pct": 30.0,
        "loadgen_cpu_pct": 5.0,
        "machine_busy_pct": 40.0,
    }
    peak_json = {**loop, "requests_per_s": peak}
    return ServerResult(name, "1", result={"open_loop": loop, "peak": peak_json})


def test_report_gives_the_ratio_and_the_verdicts() -> None:
    server = ServerInfo("16", 160000, "on", "on", "embedded")
    report = Report(
        50, 500.0, 10.0, server, 3000, (_measured("deneva", 2400, 1.5, 8.0), _measured("sdk", 600, 9, 90))
    )

    data = report.as_json()
    assert data["peak_ratio"] == 4.0
    assert data["targets"]["latency_met"] is True and data["targets"]["ratio_met"] is True
    assert "4.00x" in report.table() and "MISSED" not in report.table()

    slow = Report(
        50, 500.0, 10.0, server, 3000, (_measured("deneva", 1000, 2.5, 8.0), _measured("sdk", 600, 9, 90))
    )
    assert slow.as_json()["targets"] == {
        "p50_ms": 2.0,
        "p99_ms": 10.0,
        "peak_ratio": 2.0,
        "latency_met": False,
        "ratio_met": False,
        "oauth_overhead": 0.1,
        "oauth_met": None,
    }
    assert slow.as_json()["oauth_vs_api_key"] is None and "OAuth" not in slow.table()

    unmeasured = Report(50, 500.0, 10.0, server, 3000, (ServerResult("deneva", "1", not_measured="no /mcp"),))
    assert unmeasured.as_json()["peak_ratio"] is None
    assert "not measured: no /mcp" in unmeasured.table()


def test_report_compares_the_oauth_token_with_the_api_key() -> None:
    server = ServerInfo("16", 160000, "on", "on", "embedded")
    key, sdk = _measured("deneva", 2400, 1.0, 8.0), _measured("sdk", 600, 9, 90)
    close = Report(50, 500.0, 10.0, server, 3000, (key, _measured("oauth", 2300, 1.05, 8.4), sdk))
    data = close.as_json()
    assert data["oauth_vs_api_key"] == {"p50": 1.05, "p99": 1.05} and data["targets"]["oauth_met"] is True
    assert (
        "OAuth token / API key at 500 calls/s: p50 1.05x, p99 1.05x (target <= 1.10x: met)" in close.table()
    )
    slower = Report(50, 500.0, 10.0, server, 3000, (key, _measured("oauth", 2300, 1.0, 9.2), sdk))
    assert slower.as_json()["targets"]["oauth_met"] is False and "MISSED" in slower.table()
    missing = Report(50, 500.0, 10.0, server, 3000, (key, ServerResult("oauth", "1", not_measured="x"), sdk))
    assert missing.as_json()["targets"]["oauth_met"] is None
    assert "OAuth token / API key: not measured" in missing.table()


async def test_the_bench_access_token_is_a_working_grant_for_the_bench_tenant(
    tmp_path: Path, database_url: str
) -> None:
    spec = TenantSpec(TENANT, ((PLATFORM, ACCOUNT),))
    async with running_daemon(tmp_path, database_url, [spec]) as daemon:
        token = await issue_access_token(database_url, daemon.url)
        assert token.startswith("dnv_at_")
        # The bench's own probe (one session, one tools/call that must be a cache hit).
        assert await trio.to_thread.run_sync(probe_call, daemon.url, token) is None
        elsewhere = await trio.to_thread.run_sync(
            probe_call, daemon.url.replace("127.0.0.1", "localhost"), token
        )
        assert elsewhere is not None and "HTTP 401" in elsewhere  # bound to that resource


def test_rounds_report_the_median_round_and_list_every_round() -> None:
    server = ServerInfo("16", 160000, "on", "on", "embedded")
    deneva = combine_rounds(
        [
            _measured("deneva", 1900, 1.1, 2.0),
            _measured("deneva", 2200, 1.0, 9.0),
            _measured("deneva", 2000, 1.2, 3.0),
        ]
    )
    sdk = combine_rounds(
        [
            _measured("sdk", 700, 2, 30),
            _measured("sdk", 900, 2, 4),
            ServerResult("sdk", "1", not_measured="gone"),
        ]
    )
    assert deneva.peak_per_s == 2000 and deneva.open_loop is not None and deneva.open_loop["p99_ms"] == 3.0
    assert sdk.peak_per_s == 900 and [r["measured"] for r in sdk.rounds] == [True, True, False]
    report = Report(50, 500.0, 10.0, server, 3000, (deneva, sdk), rounds=3)
    data = report.as_json()
    assert data["rounds"] == 3 and data["peak_ratio"] == round(2000 / 900, 2)
    assert [r["peak_per_s"] for r in data["servers"]["deneva"]["rounds"]] == [1900, 2200, 2000]
    table = report.table()
    assert "3 rounds" in table and "1.10 / 2.00, 1,900; 1.00 / 9.00, 2,200; 1.20 / 3.00, 2,000" in table
    assert "not measured" in table.split("sdk rounds")[1].splitlines()[0]


@pytest.mark.parametrize(
    "bad", [["--sessions", "0"], ["--rate", "0"], ["--duration", "0"], ["--rounds", "0"], ["--rounds", "21"]]
)
def test_bench_mcp_refuses_bad_arguments(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "mcp", *bad]) == 1
    assert "expected" in capsys.readouterr().err
