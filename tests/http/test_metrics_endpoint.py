"""GET /metrics: the bearer token, the Prometheus text, a failing collect."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest
import trio

from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.http.metrics import MetricsEndpoint, bearer_token
from deneva.metrics import CONTENT_TYPE_LATEST, Metrics, ScrapeValues
from deneva.secrets import Secret
from deneva.supervisor import Supervisor
from tests.test_metrics import names, parse, value

TOKEN = "metrics-token-0123456789abcdef"
EVENT_KEY = "event-key-0123456789abcdef"


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
