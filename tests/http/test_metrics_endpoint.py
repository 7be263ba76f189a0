"""GET /metrics (the bearer token, the Prometheus text, a failing collect) and the HTTP
instrumentation: route labels from a fixed table, and every request counted on both of
hypercorn's lanes, the /mcp fast lane included (real HTTP on a free port)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from deneva.config import Bind
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.http.hypercorn_tcp import LeanTCPServer
from deneva.http.instrument import Instrumented, route_of
from deneva.http.mcp import McpRouter
from deneva.http.metrics import MetricsEndpoint, bearer_token
from deneva.http.server import HttpServer, InFlight
from deneva.metrics import CONTENT_TYPE_LATEST, HTTP_ROUTES, Metrics, ScrapeValues
from deneva.secrets import Secret
from deneva.supervisor import Supervisor
from tests.http.test_hypercorn_tcp import read_response
from tests.test_metrics import names, parse, value

TOKEN = "metrics-token-0123456789abcdef"
EVENT_KEY = "event-key-0123456789abcdef"
SECRET_PATH_KEY = "SECRETKEY0123456789"


class FixedClock:
    def now(self) -> float:
        return 1_767_225_600.0

    async def sleep_until(self, when: float) -> None:
        raise AssertionError("not used")


@attrs.define
class Collector:
    """A `collect` callback: counts its calls, answers `values` or raises `error`."""

    values: ScrapeValues = attrs.field(
        factory=lambda: ScrapeValues(queue_depth=4, oldest_due_age_s=1.5, heartbeat_age_s=12.0)
    )
    error: Exception | None = None
    calls: int = 0

    async def __call__(self) -> ScrapeValues:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.values


def _app(metrics: Metrics | None, collect: Collector, token: str | None = TOKEN) -> Any:
    health = HealthState(Supervisor(trio.Event()), FixedClock(), "node-a", migrated=True)
    endpoint = None
    if metrics is not None:
        endpoint = MetricsEndpoint(
            metrics, collect, None if token is None else Secret("DENEVA_METRICS_TOKEN", token)
        )
    return create_app(
        health,
        lambda: None,  # type: ignore[arg-type, return-value]  # the event tests never get past the key
        Secret("DENEVA_EVENT_KEY", EVENT_KEY),
        metrics=endpoint,
    )


# -- GET /metrics ----------------------------------------------------------------------


async def test_a_missing_or_wrong_token_is_401_and_never_echoed(caplog: pytest.LogCaptureFixture) -> None:
    collect = Collector()
    client = _app(Metrics(), collect).test_client()
    with caplog.at_level(logging.DEBUG):
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token-0123456789abcdef"},
            {"Authorization": f"Bearer {TOKEN[:-1]}"},
            {"Authorization": f"Bearer {TOKEN}x"},
            {"Authorization": f"Basic {TOKEN}"},
            {"Authorization": TOKEN},
            {"Authorization": "Bearer "},
            {"x-admin-token": TOKEN},
        ):
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
            body = await response.get_data(as_text=True)
            assert TOKEN not in body and TOKEN not in str(response.headers)
            assert "bearer token" in (await response.get_json())["error"]
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
    assert collect.calls == 1  # a refused scrape does not touch the database
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


async def test_with_the_token_it_serves_the_prometheus_text_with_the_gauges() -> None:
    metrics = Metrics()
    collect = Collector()
    client = _app(metrics, collect).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    first = await client.get("/metrics", headers=auth)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == CONTENT_TYPE_LATEST
    before = parse(await first.get_data())
    assert value(before, "deneva_runs_started_total", function="sync.report") is None
    assert value(before, "deneva_queue_depth") == 4
    assert value(before, "deneva_queue_oldest_due_age_seconds") == 1.5
    assert value(before, "deneva_heartbeat_age_seconds") == 12.0
    assert value(before, "deneva_scrape_errors_total") == 0

    metrics.run_started("sync.report")
    metrics.run_finished("sync.report", "succeeded")
    collect.values = ScrapeValues(queue_depth=9)
    after = parse(
        await (await client.get("/metrics", headers={"Authorization": f"bearer  {TOKEN} "})).get_data()
    )
    assert value(after, "deneva_runs_started_total", function="sync.report") == 1
    assert value(after, "deneva_runs_finished_total", function="sync.report", status="succeeded") == 1
    assert value(after, "deneva_queue_depth") == 9
    assert "deneva_heartbeat_age_seconds" not in names(after)
    assert collect.calls == 2


async def test_without_a_token_it_is_open() -> None:
    client = _app(Metrics(), Collector(), token=None).test_client()
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert value(parse(await response.get_data()), "deneva_queue_depth") == 4


async def test_a_failing_collect_still_answers_200_with_the_counters_and_a_scrape_error() -> None:
    metrics = Metrics()
    metrics.cache_read("get_report", "hit")
    collect = Collector(error=OSError("the database is down"))
    client = _app(metrics, collect, token=None).test_client()
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples = parse(await response.get_data())
    assert value(samples, "deneva_mcp_cache_reads_total", tool="get_report", result="hit") == 1
    assert value(samples, "deneva_scrape_errors_total") == 1
    assert "deneva_queue_depth" not in names(samples)
    again = parse(await (await client.get("/metrics")).get_data())
    assert value(again, "deneva_scrape_errors_total") == 2


async def test_without_metrics_there_is_no_endpoint() -> None:
    client = _app(None, Collector()).test_client()
    assert (await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 404


def test_bearer_token_parsing() -> None:
    assert bearer_token(f"Bearer {TOKEN}") == TOKEN
    assert bearer_token(f"BEARER   {TOKEN}  ") == TOKEN
    for header in ("", "Bearer", "Bearer   ", f"Basic {TOKEN}", TOKEN, f"Bearer{TOKEN}"):
        assert bearer_token(header) is None, header


# -- route labels ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/mcp", "/mcp"),
        ("/mcp/", "/mcp"),
        ("/mcp/ws", "/mcp/ws"),
        ("/healthz", "/healthz"),
        ("/readyz", "/readyz"),
        ("/metrics", "/metrics"),
        ("/admin/health/scheduler", "/admin/health/scheduler"),
        ("/admin/metrics/sync", "/admin/metrics/sync"),
        ("/admin/tenants/123", "/admin/other"),
        ("/api/events", "/api/events"),
        (f"/e/{SECRET_PATH_KEY}", "/e/{key}"),
        (f"/e/{SECRET_PATH_KEY}/more", "/e/{key}"),
        ("/webhooks/meta/0123", "/webhooks/{path}"),
        ("/.well-known/oauth-protected-resource", "/.well-known/{path}"),
        ("/", "other"),
        ("/e", "other"),
        ("/mcpx", "other"),
        ("/MCP", "other"),
        (f"/x/{SECRET_PATH_KEY}", "other"),
    ],
)
def test_route_labels_come_from_a_fixed_table(path: str, route: str) -> None:
    assert route_of(path) == route
    assert route in HTTP_ROUTES


# -- the instrumentation, over real HTTP -------------------------------------------------

WS_HANDSHAKE = (
    "GET /mcp/ws{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def fake_mcp(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for the MCP endpoint: echoes the body size; ?fail raises, ?wait waits
    for the client to go."""
    query = scope["query_string"]
    if query == b"fail":
        raise RuntimeError("the app failed before answering")
    if query == b"wait":
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    answer = b'{"got":%d}' % len(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


async def fake_ws(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Stands in for /mcp/ws: accepts (or, with ?deny, closes before accepting)."""
    assert (await receive())["type"] == "websocket.connect"
    if scope["query_string"] == b"deny":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


@asynccontextmanager
async def served(metrics: Metrics) -> AsyncIterator[tuple[str, int]]:
    app = _app(metrics, Collector(), token=None)
    app.asgi_app = McpRouter(app.asgi_app, fake_mcp, fake_ws)  # as McpEndpoints.mount does
    drain = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(HttpServer(app, Bind("127.0.0.1", 0), drain, 2.0, metrics=metrics).run)
        host, port = binds[0].removeprefix("http://").rsplit(":", 1)
        yield host, int(port)
        drain.set()
        nursery.cancel_scope.cancel()


def post(path: str, body: bytes = b"{}") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def count(metrics: Metrics, route: str, method: str, status: int) -> float:
    found = value(
        parse(metrics.render()), "deneva_http_requests_total", route=route, method=method, status=str(status)
    )
    return found or 0.0


async def test_every_request_is_counted_on_both_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    fast: list[str] = []
    original = LeanTCPServer._fast_request

    async def spied(self: LeanTCPServer, conn: Any, client: Any, server: Any) -> bool:
        fast.append("request")
        return await original(self, conn, client, server)

    monkeypatch.setattr(LeanTCPServer, "_fast_request", spied)
    metrics = Metrics()
    async with served(metrics) as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        buffer = bytearray()
        # Two /mcp requests on the fast lane, then hypercorn's own path for the rest.
        await stream.send_all(post("/mcp") + post("/mcp/", b"[1,2]"))
        assert (await read_response(stream, buffer)).endswith(b'{"got":2}')
        assert (await read_response(stream, buffer)).endswith(b'{"got":5}')
        assert fast == ["request", "request"]
        assert count(metrics, "/mcp", "POST", 200) == 2
        await stream.send_all(get("/healthz"))
        assert b'"ok"' in await read_response(stream, buffer)
        await stream.send_all(post(f"/e/{SECRET_PATH_KEY}"))
        assert (await read_response(stream, buffer)).startswith(b"HTTP/1.1 401")
        await stream.send_all(post("/mcp"))  # on hypercorn's path now, counted the same
        assert (await read_response(stream, buffer)).endswith(b'{"got":2}')
        await stream.send_all(get("/nowhere/123"))
        assert (await read_response(stream, buffer)).startswith(b"HTTP/1.1 404")
        await stream.send_all(get("/metrics"))
        first_scrape = await read_response(stream, buffer)
        await stream.send_all(get("/metrics"))
        second_scrape = await read_response(stream, buffer)
        await stream.aclose()
    assert len(fast) == 2  # the third /mcp request went through hypercorn's protocol
    assert count(metrics, "/mcp", "POST", 200) == 3
    assert count(metrics, "/healthz", "GET", 200) == 1
    assert count(metrics, "/e/{key}", "POST", 401) == 1
    assert count(metrics, "other", "GET", 404) == 1
    assert count(metrics, "/metrics", "GET", 200) == 2
    # What /metrics itself served: each scrape counts the ones before it.
    assert first_scrape.startswith(b"HTTP/1.1 200")
    _, _, text = second_scrape.partition(b"\r\n\r\n")
    served_samples = parse(text)
    assert (
        value(served_samples, "deneva_http_requests_total", route="/metrics", method="GET", status="200") == 1
    )
    assert value(served_samples, "deneva_http_request_duration_seconds_count", route="/mcp") == 3
    # The event key in the path is never a label.
    assert SECRET_PATH_KEY.encode() not in text and SECRET_PATH_KEY.encode() not in metrics.render()


async def test_a_failing_app_is_500_and_a_client_gone_before_the_answer_is_499() -> None:
    metrics = Metrics()
    async with served(metrics) as (host, port):
        failing = await trio.open_tcp_stream(host, port)
        await failing.send_all(post("/mcp?fail"))
        assert (await read_response(failing, bytearray())).startswith(b"HTTP/1.1 500")
        await failing.aclose()
        assert count(metrics, "/mcp", "POST", 500) == 1

        waiting = await trio.open_tcp_stream(host, port)
        await waiting.send_all(post("/mcp?wait"))
        await trio.testing.wait_all_tasks_blocked()
        assert count(metrics, "/mcp", "POST", 499) == 0  # under way: not counted yet
        await waiting.aclose()
        with trio.fail_after(10):  # a guard, not a wait: the server hears it at once
            while not count(metrics, "/mcp", "POST", 499):
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()
    assert count(metrics, "/mcp", "POST", 499) == 1
    assert count(metrics, "/mcp", "POST", 200) == 0


async def test_a_websocket_counts_once_at_its_handshake() -> None:
    metrics = Metrics()
    async with served(metrics) as (host, port):
        accepted = await trio.open_tcp_stream(host, port)
        await accepted.send_all(WS_HANDSHAKE.format(query="").encode())
        assert (await read_response(accepted, bytearray(), head_only=True)).startswith(b"HTTP/1.1 101")
        assert count(metrics, "/mcp/ws", "WEBSOCKET", 101) == 1
        denied = await trio.open_tcp_stream(host, port)
        await denied.send_all(WS_HANDSHAKE.format(query="?deny").encode())
        assert (await read_response(denied, bytearray(), head_only=True)).startswith(b"HTTP/1.1 403")
        await denied.aclose()
        await accepted.aclose()
        await trio.testing.wait_all_tasks_blocked()
    samples = parse(metrics.render())
    assert (
        value(samples, "deneva_http_requests_total", route="/mcp/ws", method="WEBSOCKET", status="101") == 1
    )
    assert (
        value(samples, "deneva_http_requests_total", route="/mcp/ws", method="WEBSOCKET", status="403") == 1
    )
    assert value(samples, "deneva_http_request_duration_seconds_count", route="/mcp/ws") == 2


async def test_a_request_is_counted_before_its_last_body_message_goes_out() -> None:
    metrics = Metrics()
    counted_at_send: list[float] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        counted_at_send.append(count(metrics, "/api/events", "POST", 202))

    scope = {"type": "http", "path": "/api/events", "method": "POST"}
    await Instrumented(app, metrics)(scope, receive, send)
    # A client that has the whole answer is already counted (and only once).
    assert counted_at_send == [0, 0, 1]
    assert count(metrics, "/api/events", "POST", 202) == 1


async def test_lifespan_passes_through_uncounted() -> None:
    metrics = Metrics()
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    await Instrumented(app, metrics)({"type": "lifespan"}, None, None)
    assert seen == ["lifespan"]
    assert "deneva_http_requests_total" not in names(parse(metrics.render()))


def test_without_metrics_the_server_serves_the_app_as_before() -> None:
    app = _app(None, Collector())
    plain = HttpServer(app, Bind("127.0.0.1", 0), trio.Event(), 2.0)
    assert isinstance(plain.app, InFlight) and plain.app.app is app
    metrics = Metrics()
    counted = HttpServer(app, Bind("127.0.0.1", 0), trio.Event(), 2.0, metrics=metrics)
    assert isinstance(counted.app.app, Instrumented)
    assert counted.app.app.app is app and counted.app.app.metrics is metrics
