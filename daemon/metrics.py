"""The daemon's Prometheus metrics: cheap counters on the hot paths, text at scrape time.

`Metrics` owns its own `CollectorRegistry` (never prometheus_client's global one: tests
run several daemons in one process). The engine, the MCP server, the sync and the HTTP
wrapper call its methods; `GET /metrics` (`deneva.http.metrics`) renders it with
prometheus_client's own exposition (`generate_latest`).

**Why plain-Python accumulators.** The engine runs 10,000-20,000 runs/s and the MCP
server about 2,000 calls/s on two cores, so a metric call must cost little. Measured
on the 2-core VM (Python 3.11, prometheus-client 0.26, `python -m timeit`, best of 5 x
1M calls), the same calls written with prometheus_client's objects, each child cached
in a dict by its label tuple, cost 340-400 ns for a counter (`run_started`,
`run_finished`, `cache_read`: every `inc()` takes a lock), 685 ns for `observe_run`
(the histogram walks its buckets, a lock per bucket) and 1,250 ns for `http_request`;
here they cost 65-125 ns, 140 ns and 260 ns: dicts of ints keyed by label tuple, and
per series a bucket list indexed with `bisect`. A custom collector turns them into
metric families when `/metrics` is scraped (about 4 ms for the daemon's 19 functions,
on the trio thread, once per scrape). The accumulators are not locked: call the
methods from the trio thread (the daemon's only writer), not from the database
bridge's thread.

**Bounded labels.** Fixed sets (run outcomes, cache results, error codes, HTTP routes
and methods) fold an unknown value into `other`. Open sets named by the code
(function, tool, platform, refresh outcome, janitor table) keep the first
`MAX_LABEL_VALUES` values seen, then fold into `other` (with one warning): a bug
that passes ids or keys cannot grow the output without bound. Never pass ids, keys
or paths with parameters as labels.

**Scrape-time gauges.** Queue depth, the oldest due run's age, the heartbeat's age,
MCP sessions open and runs by status are read by the daemon at scrape time (one
database crossing, in the `collect` callback it gives the endpoint), returned as a
`ScrapeValues`. A field left None is unknown and its gauge has no sample; when the
callback fails or times out the scrape still answers with every counter, the gauges
it could not read are absent, and `deneva_scrape_errors_total` goes up by one.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, cast

import attrs
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

log = logging.getLogger("deneva.metrics")
_go_float = cast(Callable[[float], str], floatToGoString)  # how prometheus_client writes `le`

__all__ = ["CONTENT_TYPE_LATEST", "CacheReads", "Metrics", "ScrapeValues"]

OTHER = "other"
MAX_LABEL_VALUES = 200  # per open label kind (function names, tools, platforms, ...)
COLLECT_TIMEOUT_S = 5.0  # the scrape's database read; Prometheus's own timeout is 10 s

RUN_OUTCOMES = ("succeeded", "failed", "cancelled")
CACHE_RESULTS = ("hit", "miss", "stale")
# deneva.adapters.errors.ErrorCode and the sync's credential_unreadable (a test keeps them in step).
ERROR_CODES = (
    "token_revoked",
    "rate_limited",
    "transient",
    "invalid_request",
    "not_found",
    "internal",
    "credential_unreadable",
)
# deneva.engine.model.STATUSES, for the runs-by-status gauge.
RUN_STATUSES = ("queued", "running", "sleeping", "waiting", "succeeded", "failed", "cancelled")
# The route labels deneva.http.instrument.route_of gives (the only ones accepted).
HTTP_ROUTES = (
    "/mcp",
    "/mcp/ws",
    "/healthz",
    "/readyz",
    "/metrics",
    "/admin/health/scheduler",
    "/admin/metrics/sync",
    "/admin/other",
    "/api/events",
    "/e/{key}",
    "/webhooks/events",
    "/webhooks/meta",
    "/webhooks/{path}",
    "/.well-known/{path}",
    OTHER,
)
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WEBSOCKET")

# Seconds. Runs and steps: most take milliseconds, sync calls to the platforms seconds.
RUN_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
# HTTP: MCP calls answer in about a millisecond; SSE streams and long tool calls take longer.
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@attrs.frozen(kw_only=True)
class ScrapeValues:
    """What the daemon reads at scrape time; None is unknown (that gauge has no sample)."""

    queue_depth: int | None = None  # due runs waiting to be claimed
    oldest_due_age_s: float | None = None  # how long the oldest due run has waited (the lag)
    heartbeat_age_s: float | None = None  # seconds since the engine's canary last ran
    mcp_sessions_open: int | None = None
    runs_by_status: Mapping[str, int] | None = None  # runs in the table, by status


@attrs.frozen
class CacheReads:
    """MCP tools' reads of the report cache in this replica since it started."""

    hits: int
    stale: int
    misses: int

    @property
    def total(self) -> int:
        return self.hits + self.stale + self.misses

    @property
    def ratio(self) -> float | None:
        """hits / reads, as `deneva bench sync` counts it (a stale answer is no hit)."""
        return None if not self.total else self.hits / self.total


class _Open:
    """The values of an open label: the first `limit` seen are kept, later ones are `other`."""

    def __init__(self, kind: str, limit: int) -> None:
        self.kind = kind
        self.limit = limit
        self.seen: set[str] = set()
        self.warned = False

    def admit(self, value: str) -> str:
        if value in self.seen:
            return value
        if isinstance(value, str) and len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        if not self.warned:
            self.warned = True
            log.warning(
                "metrics: too many %s label values; further ones are counted as %r",
                self.kind,
                OTHER,
                extra={"limit": self.limit},
            )
        return OTHER


def _fixed(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


class _Series:
    """One histogram series: a count per bucket (the last is +Inf) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.sum = 0.0


class _Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[Any, _Series] = {}
        self.les = [_go_float(b) for b in bounds] + ["+Inf"]

    def get(self, key: Any) -> _Series:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series(len(self.bounds) + 1)
        return series

    def family(self, name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=labels)
        for key, series in sorted(self.series.items()):
            total = 0
            buckets: list[tuple[str, float]] = []
            for le, count in zip(self.les, series.counts, strict=True):
                total += count
                buckets.append((le, total))
            family.add_metric(key if isinstance(key, tuple) else (key,), buckets, series.sum)
        return family


def _counter(name: str, doc: str, labels: list[str], counts: Mapping[Any, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(counts.items()):
        family.add_metric([str(v) for v in key] if isinstance(key, tuple) else [key], value)
    return family


class Metrics:
    """The daemon's metrics and their registry (its own: pass `registry` to share one)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        functions = _Open("function", MAX_LABEL_VALUES)
        self._function = functions.admit
        self._tool = _Open("tool", MAX_LABEL_VALUES).admit
        self._platform = _Open("platform", MAX_LABEL_VALUES).admit
        self._outcome = _Open("token refresh outcome", MAX_LABEL_VALUES).admit
        self._table = _Open("table", MAX_LABEL_VALUES).admit
        self._run_outcomes = frozenset(RUN_OUTCOMES)
        self._cache_results = frozenset(CACHE_RESULTS)
        self._error_codes = frozenset(ERROR_CODES)
        self._routes = frozenset(HTTP_ROUTES)
        self._methods = frozenset(HTTP_METHODS)

        self._runs_started: dict[str, int] = {}
        self._runs_finished: dict[tuple[str, str], int] = {}
        self._runs_retried: dict[str, int] = {}
        self._run_seconds = _Histogram(RUN_BUCKETS)
        self._step_seconds = _Histogram(RUN_BUCKETS)
        self._orphans = 0
        self._cache_reads: dict[tuple[str, str], int] = {}
        self._platform_calls: dict[str, int] = {}
        self._platform_errors: dict[tuple[str, str], int] = {}
        self._token_refreshes: dict[tuple[str, str], int] = {}
        self._janitor_deleted: dict[str, int] = {}
        self._http_requests: dict[tuple[str, str, int], int] = {}
        self._http_seconds = _Histogram(HTTP_BUCKETS)
        self._scrape_errors = 0
        self._collect_failing = False
        self._values: ScrapeValues | None = None  # while rendering

        self.registry.register(_Collector(self))
        if process:  # process_* (CPU, memory, open files), python_info and python_gc_*
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    # -- the engine ------------------------------------------------------------------

    def run_started(self, function: str) -> None:
        """A run of `function` started (its first attempt)."""
        counts = self._runs_started
        try:
            counts[function] += 1
        except KeyError:
            key = self._function(function)
            counts[key] = counts.get(key, 0) + 1

    def run_finished(self, function: str, status: str) -> None:
        """A run ended for good: `status` is succeeded, failed or cancelled."""
        counts = self._runs_finished
        key = (function, status)
        try:
            counts[key] += 1
        except KeyError:
            key = (self._function(function), _fixed(status, self._run_outcomes))
            counts[key] = counts.get(key, 0) + 1

    def run_retried(self, function: str) -> None:
        """An attempt failed and the run will be tried again."""
        counts = self._runs_retried
        try:
            counts[function] += 1
        except KeyError:
            key = self._function(function)
            counts[key] = counts.get(key, 0) + 1

    def observe_run(self, function: str, seconds: float) -> None:
        """How long one execution (attempt) of a run of `function` took."""
        histogram = self._run_seconds
        series = histogram.series.get(function) or histogram.get(self._function(function))
        series.counts[bisect_left(RUN_BUCKETS, seconds)] += 1
        series.sum += seconds

    def observe_step(self, function: str, seconds: float) -> None:
        """How long one step of a run of `function` took."""
        histogram = self._step_seconds
        series = histogram.series.get(function) or histogram.get(self._function(function))
        series.counts[bisect_left(RUN_BUCKETS, seconds)] += 1
        series.sum += seconds

    def orphans_rescued(self, n: int) -> None:
        """`n` runs whose worker died were put back in the queue."""
        self._orphans += _amount(n)

    # -- MCP, the sync, the janitor --------------------------------------------------

    def cache_read(self, tool: str, result: str) -> None:
        """An MCP tool read the report cache: `result` is hit, miss or stale."""
        counts = self._cache_reads
        key = (tool, result)
        try:
            counts[key] += 1
        except KeyError:
            key = (self._tool(tool), _fixed(result, self._cache_results))
            counts[key] = counts.get(key, 0) + 1

    def cache_reads(self) -> CacheReads:
        """MCP tools' report-cache reads so far in this process, by result (the console)."""
        totals = dict.fromkeys(CACHE_RESULTS, 0)
        for (_tool, result), n in self._cache_reads.items():
            if result in totals:
                totals[result] += n
        return CacheReads(totals["hit"], totals["stale"], totals["miss"])

    def platform_calls(self, platform: str, n: int = 1) -> None:
        """`n` calls were made to an ad platform's API."""
        counts = self._platform_calls
        key = self._platform(platform)
        counts[key] = counts.get(key, 0) + _amount(n)

    def platform_error(self, platform: str, code: str) -> None:
        """A platform call failed with `code` (deneva.adapters.errors.ErrorCode, or
        credential_unreadable)."""
        counts = self._platform_errors
        key = (self._platform(platform), _fixed(code, self._error_codes))
        counts[key] = counts.get(key, 0) + 1

    def token_refresh(self, platform: str, outcome: str) -> None:
        """A token refresh ended: refreshed, skipped, failed, revoked..."""
        counts = self._token_refreshes
        key = (self._platform(platform), self._outcome(outcome))
        counts[key] = counts.get(key, 0) + 1

    def janitor_deleted(self, table: str, n: int) -> None:
        """The janitor deleted `n` rows from `table`."""
        counts = self._janitor_deleted
        key = self._table(table)
        counts[key] = counts.get(key, 0) + _amount(n)

    # -- HTTP ------------------------------------------------------------------------

    def http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One HTTP request (or WebSocket handshake) answered; `route` is a label from
        HTTP_ROUTES (deneva.http.instrument.route_of), never a raw path."""
        counts = self._http_requests
        key = (route, method, status)
        try:
            counts[key] += 1
        except KeyError:
            key = (_fixed(route, self._routes), _fixed(method, self._methods), _status(status))
            counts[key] = counts.get(key, 0) + 1
        histogram = self._http_seconds
        series = histogram.series.get(route) or histogram.get(key[0])
        series.counts[bisect_left(HTTP_BUCKETS, seconds)] += 1
        series.sum += seconds

    # -- scraping --------------------------------------------------------------------

    def render(self, values: ScrapeValues | None = None) -> bytes:
        """Everything in the Prometheus text format (`CONTENT_TYPE_LATEST`), the gauges
        from `values` (none when None)."""
        self._values = values
        try:
            return generate_latest(self.registry)
        finally:
            self._values = None

    async def scrape(
        self, collect: Callable[[], Awaitable[ScrapeValues]], timeout_s: float = COLLECT_TIMEOUT_S
    ) -> bytes:
        """`collect()` (within `timeout_s`), then `render`. A `collect` that fails or
        is too slow counts in deneva_scrape_errors_total and leaves the gauges out."""
        values: ScrapeValues | None = None
        problem = "timed out"
        try:
            with trio.move_on_after(timeout_s):
                values = await collect()
        except Exception as exc:  # the database is down, say: the counters still go out
            problem = type(exc).__name__
        if values is None:
            self._scrape_errors += 1
            if not self._collect_failing:  # said once per outage, not every scrape
                log.warning(
                    "metrics: reading the scrape-time values failed; serving the counters without them",
                    extra={"problem": problem},
                )
            self._collect_failing = True
        elif self._collect_failing:
            self._collect_failing = False
            log.info("metrics: scrape-time values readable again")
        return self.render(values)

    def _families(self) -> Iterator[Metric]:
        yield _counter("deneva_runs_started", "Runs started, by function.", ["function"], self._runs_started)
        yield _counter(
            "deneva_runs_finished",
            "Runs ended for good, by function and status (succeeded, failed, cancelled).",
            ["function", "status"],
            self._runs_finished,
        )
        yield _counter(
            "deneva_run_retries",
            "Attempts that failed and will be tried again, by function.",
            ["function"],
            self._runs_retried,
        )
        yield self._run_seconds.family(
            "deneva_run_duration_seconds", "One execution (attempt) of a run, by function.", ["function"]
        )
        yield self._step_seconds.family(
            "deneva_step_duration_seconds", "One step of a run, by function.", ["function"]
        )
        orphans = CounterMetricFamily("deneva_orphans_rescued", "Runs of dead workers put back in the queue.")
        orphans.add_metric([], self._orphans)
        yield orphans
        yield _counter(
            "deneva_mcp_cache_reads",
            "Report-cache reads by MCP tools, by tool and result (hit, miss, stale).",
            ["tool", "result"],
            self._cache_reads,
        )
        yield _counter(
            "deneva_platform_calls", "Calls to the ad platforms' APIs.", ["platform"], self._platform_calls
        )
        yield _counter(
            "deneva_platform_errors",
            "Failed ad-platform calls, by platform and error code.",
            ["platform", "code"],
            self._platform_errors,
        )
        yield _counter(
            "deneva_token_refreshes",
            "OAuth token refreshes, by platform and outcome.",
            ["platform", "outcome"],
            self._token_refreshes,
        )
        yield _counter(
            "deneva_janitor_deleted_rows",
            "Rows the janitor deleted, by table.",
            ["table"],
            self._janitor_deleted,
        )
        yield _counter(
            "deneva_http_requests",
            "HTTP requests (and WebSocket handshakes) answered, by route, method and status.",
            ["route", "method", "status"],
            self._http_requests,
        )
        yield self._http_seconds.family(
            "deneva_http_request_duration_seconds",
            "Time to answer an HTTP request (a WebSocket: its handshake), by route.",
            ["route"],
        )
        errors = CounterMetricFamily(
            "deneva_scrape_errors", "Scrapes whose scrape-time values could not be read (gauges left out)."
        )
        errors.add_metric([], self._scrape_errors)
        yield errors
        yield from self._gauges(self._values or ScrapeValues())

    @staticmethod
    def _gauges(values: ScrapeValues) -> Iterator[Metric]:
        for name, doc, value in (
            ("deneva_queue_depth", "Due runs waiting to be claimed.", values.queue_depth),
            (
                "deneva_queue_oldest_due_age_seconds",
                "How long the oldest due run has been waiting (the queue's lag).",
                values.oldest_due_age_s,
            ),
            (
                "deneva_heartbeat_age_seconds",
                "Seconds since the engine's canary (the scheduler heartbeat) last ran.",
                values.heartbeat_age_s,
            ),
            ("deneva_mcp_sessions_open", "MCP sessions open.", values.mcp_sessions_open),
        ):
            gauge = GaugeMetricFamily(name, doc)
            if value is not None:
                gauge.add_metric([], float(value))
            yield gauge
        by_status = GaugeMetricFamily("deneva_runs", "Runs in the runs table, by status.", labels=["status"])
        if values.runs_by_status is not None:
            known = frozenset(RUN_STATUSES)
            folded: dict[str, float] = {}
            for status, count in values.runs_by_status.items():
                label = _fixed(status, known)
                folded[label] = folded.get(label, 0.0) + count
            for status, total in sorted(folded.items()):
                by_status.add_metric([status], total)
        yield by_status


class _Collector:
    """Turns a Metrics' accumulators into metric families when the registry is collected."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self.metrics._families()

    def describe(self) -> list[Metric]:
        return list(self.metrics._families())


def _amount(n: int) -> int:
    if n < 0:
        raise ValueError(f"a counter only goes up; got {n}")
    return n


def _status(status: int) -> int:
    return status if isinstance(status, int) and 100 <= status <= 599 else 0
