"""`deneva bench sync`: simulated hours of keeping the metric cache warm (SPEC §13).

Target: with 1,000 tenants over a simulated day, >= 99.9 % of tool reads hit a fresh
cache row, and the engine's queue does not grow.

What runs is the daemon's own: its function registry (`deneva.functions.app_registry`:
`eager-cache-refresh` every minute, the `sync-{platform}-{reportType}` fan-outs every ten
minutes, the `refresh-tenant-report` worker, `eager-token-refresh` and
`refresh-one-token`), the engine's Dispatcher and Scheduler actors with the daemon's
settings (`workers` from the configuration, a 20-connection pool), the real adapters over
HTTP, on a throwaway database `deneva_bench_sync_<pid>` made on the configured server and
dropped at the end.

- Platforms: the sandbox (`deneva.sandbox`) serves in a process of its own on loopback,
  as real platforms work on their own machines; its clock (token expiry, the reporting
  date) is the simulation's virtual clock. The adapters share one HTTP client (the
  daemon's wiring opens a client per call, whose TLS context alone costs about 20 ms of
  CPU); at most 16 platform calls are under way at once, as one sandbox process would
  otherwise share its CPU among hundreds of calls, each slower than the adapters'
  timeouts in a burst, where a real platform answers each caller at the same speed.
- Time: virtual (`deneva.bench.simclock.SkipIdleClock`). While anything is under way
  (a runnable task, a database call, a platform call) it follows the real clock, so
  work takes the time it really takes on this machine and shows up as queueing and lag;
  when everything waits on a timer it jumps to that timer. The run starts at
  2026-01-05 05:59:30 UTC, so the first cron ticks come 30 s in and the reporting date
  rolls over at midnight during a 24 h run.
- Tenants: each is connected to `platforms` (default 1) of google, meta, tiktok, taken
  round-robin (tenant i gets platform i mod 3, then the next), each with its own
  sandbox account and token; a key is (tenant, platform, account, report type, date
  range) from the cadence table: 12 for Google, 7 for Meta, 6 for TikTok.
- Reads: simulated LLM traffic, `reads_per_tenant_hour` per tenant per simulated hour
  at uniformly random virtual times, each on a uniformly random key, through
  `deneva.sync.cache.read` (a tenant transaction, as tools read): a hit is a row that
  is there and neither expired nor marked stale at that moment; anything else is a
  miss. The first simulated hour is warm-up: its reads are reported but not counted in
  the hit ratio (before its first fetch every key misses).
- Measured: hit ratio; report fetches and platform API calls (the sandbox's request
  log) per key per TTL after warm-up (ideal about 1.18: a refresh at 80-90 % of the
  TTL); the interval between two fetches of a key as a fraction of its TTL; refresh
  lag (how far past its `refresh_at` the most overdue row is, sampled every 30 s);
  the engine's queue (runs queued and due: exact peaks per hour from the runs' due
  and start times, samples every 30 s, the depth at the end) and how long refresh
  runs waited to start; wall time, fetches per wall-clock second, and the CPU time of
  this process (the daemon's side) and of the sandbox's.
- "No growing backlog": the queue of due runs empties at least once in every
  simulated hour after warm-up.
"""

from __future__ import annotations

import bisect
import contextvars
import itertools
import logging
import math
import os
import random
import resource
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import trio

from deneva import tenants as tenant_store
from deneva.adapters import (
    PLATFORMS,
    Credentials,
    PlatformConfig,
    ReportData,
    ReportRequest,
    TokenGrant,
    adapters_for,
)
from deneva.adapters.base import Platform, TokenSource
from deneva.admin import admin_dsn, run_async
from deneva.bench.common import BenchError, Say, database_where, print_report, say_to_stderr
from deneva.bench.engine import (
    ServerInfo,
    ThrowawayDatabase,
    machine_info,
    percentile,
    server_info,
)
from deneva.bench.sandbox_process import SandboxProcess, TokenSpec
from deneva.bench.simclock import SkipIdleClock
from deneva.canary import CanaryServices
from deneva.clock import TrioClock, as_datetime
from deneva.config import Config
from deneva.credentials import Keyring, PlainTokens, store_credential
from deneva.db import Connection, Database, connect_once
from deneva.engine.engine import EngineSettings
from deneva.functions import app_registry
from deneva.logs import setup_logging
from deneva.migrations import load_migrations, migrate
from deneva.sync import cache
from deneva.sync.cadence import CADENCES
from deneva.sync.model import SyncServices
from deneva.sync.tokens import TokenDeadlines
from deneva.wiring import engine_circuit

TARGET_HIT_RATIO = 0.999
START = datetime(2026, 1, 5, 5, 59, 30, tzinfo=UTC).timestamp()
HOUR = 3600.0
WARMUP_S = HOUR
SAMPLE_S = 30.0
READS_PER_TENANT_HOUR = 2.0
POOL_SIZE = 20  # the daemon's pool: max(4, min(workers, 20))
PROVISION_BATCH = 200
# Platform calls under way at once (see the module's docstring).
PLATFORM_SLOTS = 16
TOKEN_ENDPOINTS = ("token", "revoke")
REFRESH_FUNCTION = "refresh-tenant-report"

# -- the simulated world ---------------------------------------------------------------------------


@attrs.frozen
class Params:
    tenants: int
    hours: float
    platforms: int = 1
    reads_per_tenant_hour: float = READS_PER_TENANT_HOUR
    workers: int = 256
    seed: int = 0
    # The engine's timers: the daemon's settings unless a test wants fewer wake-ups.
    poll_s: float = EngineSettings().poll_s
    lease_s: float = EngineSettings().lease_s

    @property
    def end(self) -> float:
        return START + self.hours * HOUR

    @property
    def measured_from(self) -> float:
        return START + WARMUP_S

    def check(self) -> None:
        if self.tenants < 1:
            raise BenchError("tenants: expected at least 1")
        if not 1 <= self.platforms <= len(PLATFORMS):
            raise BenchError(f"platforms: expected 1 to {len(PLATFORMS)}")
        if self.hours * HOUR < WARMUP_S + SAMPLE_S * 4:
            raise BenchError("hours: expected more than the hour of warm-up")
        if self.reads_per_tenant_hour <= 0:
            raise BenchError("reads per tenant and hour: expected more than 0")


@attrs.frozen
class Connected:
    """One tenant's connection to one platform: its sandbox account and token."""

    tenant: int
    platform: str

    @property
    def tenant_name(self) -> str:
        return f"bench-{self.tenant:06d}"

    @property
    def account_id(self) -> str:
        base = {"google": 1_000_000_000, "meta": 100_000, "tiktok": 7_000_000_000_000_000_000}
        return str(base[self.platform] + self.tenant)

    @property
    def token(self) -> str:
        return f"bench-{self.platform}-{self.tenant:06d}"

    @property
    def token_spec(self) -> TokenSpec:
        return (self.platform, "refresh" if self.platform == "google" else "access", self.token)

    @property
    def plain_tokens(self) -> PlainTokens:
        if self.platform == "google":
            return PlainTokens(self.token, None)
        return PlainTokens(None, self.token)


def connections(tenants: int, platforms: int) -> list[Connected]:
    """Tenant i is connected to PLATFORMS[i mod 3] and the next `platforms - 1` after it."""
    return [
        Connected(i, PLATFORMS[(i + j) % len(PLATFORMS)]) for i in range(tenants) for j in range(platforms)
    ]


@attrs.frozen
class Key:
    cache_key: cache.CacheKey
    ttl_s: float


def keys_of(connected: Sequence[Connected], tenant_ids: dict[int, uuid.UUID]) -> list[Key]:
    keys = []
    for c in connected:
        for cadence in CADENCES:
            if cadence.platform != c.platform:
                continue
            for date_range in cadence.date_ranges:
                key = cache.CacheKey(
                    tenant_ids[c.tenant], c.platform, c.account_id, cadence.report_type, date_range
                )
                keys.append(Key(key, cadence.ttl_s))
    return keys


_HOLDING: contextvars.ContextVar[bool] = contextvars.ContextVar("holding_a_platform_slot", default=False)


class HeldPlatform:
    """An adapter whose calls hold virtual time (the platform works in another process),
    at most `slots` at once across the platforms (shared limiter)."""

    def __init__(self, inner: Platform, clock: SkipIdleClock, slots: trio.CapacityLimiter) -> None:
        self.inner = inner
        self.clock = clock
        self.slots = slots

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def api_version(self) -> str:
        return self.inner.api_version

    async def fetch_report(
        self, creds: Credentials, request: ReportRequest, tokens: TokenSource | None = None
    ) -> ReportData:
        with self.clock.busy():
            async with self.slots:
                token = _HOLDING.set(True)
                try:
                    return await self.inner.fetch_report(creds, request, tokens)
                finally:
                    _HOLDING.reset(token)

    async def refresh_token(self, creds: Credentials) -> TokenGrant:
        with self.clock.busy():
            if _HOLDING.get():  # a refresh on the way of a fetch: that fetch holds the slot
                return await self.inner.refresh_token(creds)
            async with self.slots:
                return await self.inner.refresh_token(creds)


# -- what is recorded while it runs ----------------------------------------------------------------


@attrs.define
class Reads:
    warmup: int = 0
    warmup_hits: int = 0
    reads: int = 0
    hits: int = 0
    absent: int = 0
    stale: int = 0

    def record(self, measured: bool, result: cache.CacheResult | None) -> None:
        hit = result is not None and not result.stale
        if not measured:
            self.warmup += 1
            self.warmup_hits += hit
            return
        self.reads += 1
        if hit:
            self.hits += 1
        elif result is None:
            self.absent += 1
        else:
            self.stale += 1

    @property
    def hit_ratio(self) -> float:
        return self.hits / self.reads if self.reads else 0.0


@attrs.frozen
class Sample:
    at: float
    queued: int  # runs queued (or sleeping, waiting) and due
    running: int
    rows: int  # cache rows
    expired: int  # cache rows expired or marked stale
    lag_s: float  # how far past its refresh_at the most overdue row is (0: none)


_SAMPLE = """
SELECT
  (SELECT count(*) FROM engine_runs
    WHERE status IN ('queued', 'sleeping', 'waiting') AND run_at <= $1) AS queued,
  (SELECT count(*) FROM engine_runs WHERE status = 'running') AS running,
  (SELECT count(*) FROM metric_cache) AS rows,
  (SELECT count(*) FROM metric_cache WHERE expires_at <= $1 OR is_stale) AS expired,
  (SELECT extract(epoch FROM $1::timestamptz - min(refresh_at))::float8
     FROM metric_cache WHERE refresh_at <= $1) AS lag
"""


async def take_sample(db: Database, now: float) -> Sample:
    row = await db.fetchrow(_SAMPLE, as_datetime(now))
    assert row is not None
    return Sample(
        now, row["queued"], row["running"], row["rows"], row["expired"], max(0.0, row["lag"] or 0.0)
    )


def request_counts(summary: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{platform: {endpoint: calls}} from the sandbox's /_control/requests answer."""
    counts: dict[str, dict[str, int]] = {}
    for platform, endpoints in summary["counts"].items():
        for endpoint, accounts in endpoints.items():
            counts.setdefault(platform, {})[endpoint] = sum(accounts.values())
    return counts


@attrs.define
class Recorded:
    """What the simulation saw; analysed once it has stopped."""

    keys: list[Key]
    connected: list[Connected]
    reads: Reads = attrs.Factory(Reads)
    samples: list[Sample] = attrs.Factory(list)
    calls_at_warmup: dict[str, dict[str, int]] = attrs.Factory(dict)
    calls_at_end: dict[str, dict[str, int]] = attrs.Factory(dict)
    provision_s: float = 0.0
    wall_s: float = 0.0
    jumps: int = 0
    cpu_s: float = 0.0  # this process (the daemon's side) during the simulated hours
    sandbox_cpu_s: float | None = None  # the sandbox process, likewise
    rescued_runs: int = 0  # re-queued because their worker stopped renewing (the lifeline)
    deadlocks: int = 0  # detected by the server in the bench's database (pg_stat_database)
    warnings: Counter[str] = attrs.Factory(Counter)  # log records at WARNING and above


class WarningCount(logging.Handler):
    """Counts the daemon's log records at WARNING and above, by logger and message."""

    def __init__(self, into: Counter[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into[f"{record.name}: {record.getMessage()[:120]}"] += 1


# -- the run ---------------------------------------------------------------------------------------


async def provision(db: Database, keys: Keyring, connected: Sequence[Connected]) -> dict[int, uuid.UUID]:
    """Create the tenants and store their (encrypted) credentials; tenant index -> id."""
    ids: dict[int, uuid.UUID] = {}
    for start in range(0, len(connected), PROVISION_BATCH):
        batch = connected[start : start + PROVISION_BATCH]

        async def add(conn: Connection, batch: Sequence[Connected] = batch) -> None:
            for c in batch:
                if c.tenant not in ids:
                    ids[c.tenant] = (await tenant_store.add_tenant(conn, c.tenant_name)).id
                await store_credential(conn, keys, c.tenant_name, c.platform, c.account_id, c.plain_tokens)

        await db.transaction(add)
    return ids


def read_plan(keys: Sequence[Key], params: Params) -> list[tuple[float, Key]]:
    rng = random.Random(params.seed)
    count = max(1, round(params.tenants * params.hours * params.reads_per_tenant_hour))
    span = params.end - START
    return sorted(((START + rng.random() * span, rng.choice(keys)) for _ in range(count)), key=lambda r: r[0])


async def _read_traffic(
    db: Database, clock: TrioClock, plan: Sequence[tuple[float, Key]], reads: Reads
) -> None:
    measured_from = START + WARMUP_S
    for at, key in plan:
        await clock.sleep_until(at)
        now = clock.now()
        result = await cache.read(db, key.cache_key, now)
        reads.record(at >= measured_from, result)


async def _sample_loop(db: Database, clock: TrioClock, end: float, samples: list[Sample]) -> None:
    at = START + SAMPLE_S / 2
    while at < end:
        await clock.sleep_until(at)
        samples.append(await take_sample(db, clock.now()))
        at += SAMPLE_S


@attrs.frozen
class Platforms:
    """Where the sandbox serves, the clock it follows, and its CPU time so far."""

    base_url: str
    clock: SkipIdleClock
    cpu_seconds: Callable[[], float | None] = lambda: None

    async def calls(self, http: httpx.AsyncClient) -> dict[str, dict[str, int]]:
        """The sandbox's request counts, {platform: {endpoint: calls}}."""
        with self.clock.busy():
            response = await http.get(f"{self.base_url}/_control/requests", timeout=30)
        response.raise_for_status()
        return request_counts(response.json())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def simulate(dsn: str, env: str, params: Params, platforms: Platforms, say: Say) -> Report:
    """The whole simulation, under `trio.run(..., clock=platforms.clock)`."""
    bridge, owner = await connect_once(dsn)
    try:
        await bridge.call(migrate, owner, env, load_migrations())
    finally:
        with trio.CancelScope(shield=True):
            await bridge.call(owner.close)
        bridge.stop()
    db = await Database.open(dsn, min_size=4, max_size=POOL_SIZE)
    try:
        keys = Keyring(os.urandom(32))
        connected = connections(params.tenants, params.platforms)
        started = time.perf_counter()
        tenant_ids = await provision(db, keys, connected)
        recorded = Recorded(keys_of(connected, tenant_ids), connected)
        recorded.provision_s = time.perf_counter() - started
        say(
            f"{params.tenants} tenants, {len(connected)} connected accounts, {len(recorded.keys)} keys "
            f"(provisioned in {recorded.provision_s:.1f} s); simulating {params.hours:g} h"
        )
        # A connection per call slot, so no request waits in httpcore's pool (whose queue
        # scan costs more than the fetches once hundreds wait).
        limits = httpx.Limits(
            max_connections=PLATFORM_SLOTS * 2, max_keepalive_connections=PLATFORM_SLOTS * 2
        )
        counter = WarningCount(recorded.warnings)
        logging.getLogger("deneva").addHandler(counter)
        try:
            async with httpx.AsyncClient(limits=limits) as http:
                await _run(db, keys, params, platforms, http, recorded, say)
        finally:
            logging.getLogger("deneva").removeHandler(counter)
        say("analysing the runs")
        analysis = await analyse_runs(db, recorded.keys, params)
    finally:
        await db.close()
    recorded.deadlocks = await _deadlocks(dsn)  # the pool's backends have exited: counted
    return Report(params, recorded, analysis)


async def _deadlocks(dsn: str) -> int:
    """Deadlocks the server detected in this database (each backend reports its own when
    it exits, so this is read after the pool has closed)."""
    bridge, conn = await connect_once(dsn)
    try:
        return int(
            await bridge.call(
                conn.fetchval, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            )
        )
    finally:
        with trio.CancelScope(shield=True):
            await bridge.call(conn.close)
        bridge.stop()


async def _run(
    db: Database,
    keys: Keyring,
    params: Params,
    platforms: Platforms,
    http: httpx.AsyncClient,
    recorded: Recorded,
    say: Say,
) -> None:
    sim = platforms.clock
    clock = TrioClock(START - trio.current_time())
    sim.anchor(clock.epoch)
    functions = app_registry()
    registry, runtime = functions.registry, functions.sync
    functions.canary.value = CanaryServices(db, clock, "bench-sync")  # the heartbeat runs, as in the daemon
    config = PlatformConfig.for_sandbox(platforms.base_url, clock=clock.now)
    slots = trio.CapacityLimiter(PLATFORM_SLOTS)
    adapters: dict[str, Platform] = {
        name: HeldPlatform(adapter, sim, slots) for name, adapter in adapters_for(config, http=http).items()
    }
    owner = f"bench-sync-{os.getpid()}"
    services = SyncServices(
        db, keys, adapters, clock, today=lambda: as_datetime(clock.now()).date(), owner=owner
    )
    runtime.services = services
    settings = EngineSettings(workers=params.workers, poll_s=params.poll_s, lease_s=params.lease_s)
    tokens = TokenDeadlines(lambda: db, lambda: tuple(adapters))
    circuit = engine_circuit(db, registry, clock, owner, settings, drain=trio.Event(), tokens=tokens)
    plan = read_plan(recorded.keys, params)
    jumps_before = sim.jumps
    cpu_before, sandbox_before = _cpu_seconds(), platforms.cpu_seconds()
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for actor in circuit.actors:
            await nursery.start(actor.run)
        nursery.start_soon(_read_traffic, db, clock, plan, recorded.reads)
        nursery.start_soon(_sample_loop, db, clock, params.end, recorded.samples)
        await clock.sleep_until(params.measured_from)
        recorded.calls_at_warmup = await platforms.calls(http)
        hour = 1
        while (at := START + (hour + 1) * HOUR) < params.end:
            await clock.sleep_until(at)
            hour += 1
            elapsed = time.perf_counter() - started
            say(
                f"simulated {hour} h of {params.hours:g} in {elapsed:.0f} s; "
                f"{recorded.reads.reads} reads measured"
            )
        await clock.sleep_until(params.end)
        recorded.wall_s = time.perf_counter() - started
        recorded.jumps = sim.jumps - jumps_before
        recorded.cpu_s = _cpu_seconds() - cpu_before
        sandbox_after = platforms.cpu_seconds()
        if sandbox_before is not None and sandbox_after is not None:
            recorded.sandbox_cpu_s = sandbox_after - sandbox_before
        recorded.samples.append(await take_sample(db, clock.now()))
        recorded.calls_at_end = await platforms.calls(http)
        recorded.rescued_runs = circuit.actor("lifeline").rescued
        nursery.cancel_scope.cancel()


# -- analysis --------------------------------------------------------------------------------------


@attrs.frozen
class Analysis:
    runs: dict[str, dict[str, int]]  # function -> status -> count
    fetches: int  # report fetches that succeeded (all)
    fetches_measured: int  # ... with their fetch after warm-up
    fetched_keys: int
    interval_mean: float  # time between two fetches of a key, over its TTL
    interval_max: float
    headroom_min_s: float  # least time left before expiry when a refresh landed
    wait_p50_s: float  # refresh runs: due to started
    wait_p99_s: float
    wait_max_s: float
    peaks: tuple[int, ...]  # per simulated hour: most runs queued and due at once
    retried_runs: int
    sync_failures: dict[str, int]
    failure_messages: dict[str, int]  # the commonest, for a diagnosis


_RUNS = """
SELECT function_id, status, attempt, extract(epoch FROM run_at)::float8 AS run_at,
       extract(epoch FROM started_at)::float8 AS started_at
FROM engine_runs
"""

_REFRESHES = """
SELECT event->'data' AS data, (output->>'fetchedAt')::float8 AS fetched_at
FROM engine_runs WHERE function_id = $1 AND status = 'succeeded'
"""


def queue_peaks(runs: Sequence[Any], start: float, end: float) -> tuple[list[int], int]:
    """Most runs due but not started at once, per hour of [start, end); runs retried
    (due again after their first start) are left out and counted."""
    hours = max(1, math.ceil((end - start) / HOUR))
    changes: list[tuple[float, int]] = []
    retried = 0
    for run in runs:
        due, began = run["run_at"], run["started_at"]
        if began is not None and began < due:
            retried += 1
            continue
        if due >= end:
            continue
        changes.append((due, 1))
        if began is not None:
            changes.append((began, -1))
    changes.sort(key=lambda c: (c[0], c[1]))
    peaks = [0] * hours
    depth = 0
    for at, change in changes:
        depth += change
        if start <= at < end:
            hour = int((at - start) // HOUR)
            peaks[hour] = max(peaks[hour], depth)
    return peaks, retried


async def analyse_runs(db: Database, keys: Sequence[Key], params: Params) -> Analysis:
    runs = await db.fetch(_RUNS)
    by_function: dict[str, Counter[str]] = defaultdict(Counter)
    waits: list[float] = []
    for run in runs:
        by_function[run["function_id"]][run["status"]] += 1
        due, began = run["run_at"], run["started_at"]
        if run["function_id"] != REFRESH_FUNCTION or began is None or began < due:
            continue
        if params.measured_from <= due < params.end:
            waits.append(began - due)
    peaks, retried = queue_peaks(runs, START, params.end)

    ttl = {(k.cache_key.platform, k.cache_key.report_type): k.ttl_s for k in keys}
    fetched: dict[tuple[str, str, str, str, str], list[float]] = defaultdict(list)
    for row in await db.fetch(_REFRESHES, REFRESH_FUNCTION):
        data = row["data"]
        if row["fetched_at"] is None:
            continue
        key = (
            data["tenant_id"],
            data["platform"],
            data["account_id"],
            data["report_type"],
            data["date_range"],
        )
        fetched[key].append(row["fetched_at"])
    ratios: list[float] = []
    headroom = math.inf
    fetches = measured = 0
    for key, times in fetched.items():
        times.sort()
        fetches += len(times)
        measured += len(times) - bisect.bisect_left(times, params.measured_from)
        key_ttl = ttl[(key[1], key[3])]
        for before, after in itertools.pairwise(times):
            ratios.append((after - before) / key_ttl)
            headroom = min(headroom, key_ttl - (after - before))
    failures = await db.fetch(
        "SELECT outcome || coalesce(':' || error_code, '') AS what, count(*) AS n FROM sync_log "
        "WHERE outcome <> 'success' GROUP BY 1"
    )
    messages = await db.fetch(
        "SELECT left(error_message, 160) AS message, count(*) AS n FROM sync_log "
        "WHERE outcome <> 'success' GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
    )
    return Analysis(
        runs={f: dict(sorted(c.items())) for f, c in sorted(by_function.items())},
        fetches=fetches,
        fetches_measured=measured,
        fetched_keys=len(fetched),
        interval_mean=sum(ratios) / len(ratios) if ratios else 0.0,
        interval_max=max(ratios, default=0.0),
        headroom_min_s=headroom if ratios else 0.0,
        wait_p50_s=percentile(waits, 50) if waits else 0.0,
        wait_p99_s=percentile(waits, 99) if waits else 0.0,
        wait_max_s=max(waits, default=0.0),
        peaks=tuple(peaks),
        retried_runs=retried,
        sync_failures={r["what"]: int(r["n"]) for r in failures},
        failure_messages={r["message"] or "": int(r["n"]) for r in messages},
    )


# -- the report ------------------------------------------------------------------------------------


def _calls_between(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> tuple[int, int]:
    """(report calls, token calls) made between two request-log snapshots."""
    report = token = 0
    for platform, endpoints in after.items():
        for endpoint, n in endpoints.items():
            made = n - before.get(platform, {}).get(endpoint, 0)
            if endpoint in TOKEN_ENDPOINTS:
                token += made
            else:
                report += made
    return report, token


@attrs.frozen
class Report:
    params: Params
    recorded: Recorded
    analysis: Analysis
    server: ServerInfo | None = None

    @property
    def key_periods(self) -> float:
        """TTL periods after warm-up, summed over the keys: the ideal number of fetches."""
        measured_s = self.params.end - self.params.measured_from
        return sum(measured_s / k.ttl_s for k in self.recorded.keys)

    def per_key_ttl(self, count: int) -> float:
        periods = self.key_periods
        return count / periods if periods else 0.0

    @property
    def measured_samples(self) -> list[Sample]:
        return [s for s in self.recorded.samples if s.at >= self.params.measured_from]

    @property
    def drained_every_hour(self) -> bool:
        """The queue of due runs was empty at some sample in every hour after warm-up."""
        hours: dict[int, int] = {}
        for sample in self.measured_samples:
            hour = int((sample.at - START) // HOUR)
            hours[hour] = min(hours.get(hour, sample.queued), sample.queued)
        return bool(hours) and all(depth == 0 for depth in hours.values())

    @property
    def final_queue(self) -> int:
        return self.recorded.samples[-1].queued if self.recorded.samples else 0

    @property
    def meets_hit_target(self) -> bool:
        return self.recorded.reads.hit_ratio >= TARGET_HIT_RATIO

    def as_json(self) -> dict[str, Any]:
        params, recorded, analysis = self.params, self.recorded, self.analysis
        reads = recorded.reads
        report_calls, token_calls = _calls_between(recorded.calls_at_warmup, recorded.calls_at_end)
        all_report, all_token = _calls_between({}, recorded.calls_at_end)
        measured = self.measured_samples
        mix = Counter(c.platform for c in recorded.connected)
        simulated_s = params.end - START
        wall = recorded.wall_s
        fetches = analysis.fetches
        sandbox_cpu = recorded.sandbox_cpu_s
        return {
            "benchmark": "sync",
            "machine": machine_info(),
            "postgres": None if self.server is None else self.server.as_json(),
            "tenants": params.tenants,
            "platforms_per_tenant": params.platforms,
            "connected_accounts": dict(sorted(mix.items())),
            "keys": len(recorded.keys),
            "simulated_hours": params.hours,
            "start": as_datetime(START).isoformat(),
            "warmup_hours": WARMUP_S / HOUR,
            "workers": params.workers,
            "settings": {
                "engine_poll_s": params.poll_s,
                "engine_lease_s": params.lease_s,
                "platform_calls_at_once": PLATFORM_SLOTS,
                "reads_per_tenant_hour": params.reads_per_tenant_hour,
                "sample_every_s": SAMPLE_S,
            },
            "reads": {
                "measured": reads.reads,
                "hits": reads.hits,
                "absent": reads.absent,
                "stale": reads.stale,
                "hit_ratio": round(reads.hit_ratio, 6),
                "warmup_reads": reads.warmup,
                "warmup_hits": reads.warmup_hits,
                "target_hit_ratio": TARGET_HIT_RATIO,
                "meets_target": self.meets_hit_target,
            },
            "fetches": {
                "total": fetches,
                "after_warmup": analysis.fetches_measured,
                "keys_fetched": analysis.fetched_keys,
                "per_key_per_ttl": round(self.per_key_ttl(analysis.fetches_measured), 3),
                "interval_over_ttl_mean": round(analysis.interval_mean, 3),
                "interval_over_ttl_max": round(analysis.interval_max, 3),
                "min_headroom_s": round(analysis.headroom_min_s, 1),
                "max_refresh_lag_s": round(max((s.lag_s for s in measured), default=0.0), 1),
                "max_expired_rows": max((s.expired for s in measured), default=0),
                "sync_failures": analysis.sync_failures,
                "failure_messages": analysis.failure_messages,
            },
            "api_calls": {
                "total": all_report + all_token,
                "report_total": all_report,
                "token_total": all_token,
                "report_after_warmup": report_calls,
                "token_after_warmup": token_calls,
                "report_per_key_per_ttl": round(self.per_key_ttl(report_calls), 3),
                "all_per_key_per_ttl": round(self.per_key_ttl(report_calls + token_calls), 3),
                "by_endpoint": recorded.calls_at_end,
            },
            "queue": {
                "peak_queued": max(analysis.peaks, default=0),
                "peak_queued_after_warmup": max(analysis.peaks[int(WARMUP_S // HOUR) :], default=0),
                "peak_queued_per_hour": list(analysis.peaks),
                "peak_running_sampled": max((s.running for s in recorded.samples), default=0),
                "final_queued": self.final_queue,
                "drained_every_hour": self.drained_every_hour,
                "backlog_growing": not self.drained_every_hour,
                "refresh_wait_p50_s": round(analysis.wait_p50_s, 3),
                "refresh_wait_p99_s": round(analysis.wait_p99_s, 3),
                "refresh_wait_max_s": round(analysis.wait_max_s, 3),
                "retried_runs": analysis.retried_runs,
            },
            "runs": analysis.runs,
            "wall_s": round(wall, 1),
            "provision_s": round(recorded.provision_s, 1),
            "speedup": round(simulated_s / wall, 1) if wall else None,
            "fetches_per_s": round(fetches / wall, 1) if wall else None,
            "cpu": {
                "daemon_s": round(recorded.cpu_s, 1),
                "daemon_ms_per_fetch": round(recorded.cpu_s * 1000 / fetches, 2) if fetches else None,
                "daemon_share_of_a_core": round(recorded.cpu_s / simulated_s, 5),
                "sandbox_s": None if sandbox_cpu is None else round(sandbox_cpu, 1),
            },
            "clock_jumps": recorded.jumps,
            "health": {
                "deadlocks": recorded.deadlocks,
                "rescued_runs": recorded.rescued_runs,
                "warnings": sum(recorded.warnings.values()),
                "commonest_warnings": dict(recorded.warnings.most_common(5)),
            },
            "targets_met": self.meets_hit_target and self.drained_every_hour,
        }

    def table(self) -> str:
        return render_table(self.as_json())


def render_table(data: dict[str, Any]) -> str:
    """The report for people, from its JSON (`Report.as_json`)."""
    machine, server = data["machine"], data["postgres"]
    reads, fetches, calls, queue = data["reads"], data["fetches"], data["api_calls"], data["queue"]
    cpu = data["cpu"]
    mix = ", ".join(f"{p} {n}" for p, n in data["connected_accounts"].items())
    failures = ", ".join(f"{k} {v}" for k, v in fetches["sync_failures"].items()) or "none"
    tokens = data["runs"].get("refresh-one-token", {}).get("succeeded", 0)
    where = (
        ""
        if server is None
        else f", PostgreSQL {server['version']} (fsync {server['fsync']}), {server['where']}"
    )
    sandbox_cpu = "" if cpu["sandbox_s"] is None else f"; the sandbox process {cpu['sandbox_s']:,.0f} s"
    lines = [
        f"deneva sync benchmark: {machine['cores']} cores, Python {machine['python']}{where}",
        f"{data['tenants']:,} tenants on {data['platforms_per_tenant']} platform(s) each ({mix}): "
        f"{data['keys']:,} cached reports (keys); workers={data['workers']}",
        f"{data['simulated_hours']:g} simulated hours from {data['start']} on a virtual clock; "
        "the first hour is warm-up",
        "",
        f"reads     {reads['measured']:,} after warm-up: hit ratio {reads['hit_ratio'] * 100:.3f} % "
        f"({reads['absent']} absent, {reads['stale']} stale); target >= {TARGET_HIT_RATIO * 100:g} %: "
        f"{_verdict(reads['meets_target'])}  (warm-up: {reads['warmup_hits']:,} hits of "
        f"{reads['warmup_reads']:,})",
        f"fetches   {fetches['total']:,} ({fetches['after_warmup']:,} after warm-up, "
        f"{fetches['keys_fetched']:,} keys): {fetches['per_key_per_ttl']:.3f} per key per TTL",
        f"api calls {calls['total']:,} ({calls['report_total']:,} report, "
        f"{calls['token_total']:,} token); after warm-up per key per TTL: "
        f"{calls['report_per_key_per_ttl']:.3f} report, {calls['all_per_key_per_ttl']:.3f} with token "
        f"calls; {tokens:,} token refreshes",
        f"refresh   interval / TTL mean {fetches['interval_over_ttl_mean']:.3f}, max "
        f"{fetches['interval_over_ttl_max']:.3f} (least headroom before expiry "
        f"{fetches['min_headroom_s']:,.0f} s); max refresh lag {fetches['max_refresh_lag_s']:,.0f} s "
        f"(sampled every {SAMPLE_S:g} s); expired rows seen {fetches['max_expired_rows']}; "
        f"sync failures: {failures}",
        f"queue     runs queued and due: peak {queue['peak_queued']:,} (after warm-up "
        f"{queue['peak_queued_after_warmup']:,}), final {queue['final_queued']:,}; emptied every "
        f"hour: {'yes' if queue['drained_every_hour'] else 'NO'}; backlog growing: "
        f"{'YES' if queue['backlog_growing'] else 'no'}",
        f"          refresh runs waited p50 {queue['refresh_wait_p50_s']:.3f} s, p99 "
        f"{queue['refresh_wait_p99_s']:.3f} s, max {queue['refresh_wait_max_s']:.3f} s; peak running "
        f"(sampled) {queue['peak_running_sampled']}",
        f"wall      {data['wall_s']:,.0f} s for {data['simulated_hours']:g} simulated hours "
        f"({data['speedup']}x real time), {data['fetches_per_s']} fetches/s "
        f"(provisioning {data['provision_s']:.1f} s)",
        f"cpu       the daemon's process {cpu['daemon_s']:,.0f} s ({cpu['daemon_ms_per_fetch']} ms per "
        f"fetch, {cpu['daemon_share_of_a_core'] * 100:.2f} % of a core over the simulated time)"
        f"{sandbox_cpu}",
    ]
    health = data.get("health")
    if health is not None:
        lines.append(
            f"health    deadlocks {health['deadlocks']}, runs rescued from a stalled worker "
            f"{health['rescued_runs']}, warnings logged {health['warnings']:,}"
        )
        lines += [f"          {n:,} x {what}" for what, n in health["commonest_warnings"].items()]
    return "\n".join(lines)


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# -- entry points ----------------------------------------------------------------------------------


def run_benchmark(
    server_dsn: str, params: Params, *, env: str, where: str = "", say: Say = say_to_stderr
) -> Report:
    """Run the simulation against a server (an owner DSN on it; any database)."""
    params.check()
    server = run_async(lambda: server_info(server_dsn, where))
    name = f"deneva_bench_sync_{os.getpid()}"
    connected = connections(params.tenants, params.platforms)
    say(
        f"PostgreSQL {server.version}; {os.cpu_count()} cores; database {name}; "
        "the sandbox in a process of its own"
    )
    sandbox = SandboxProcess([c.token_spec for c in connected], seed=params.seed)
    sim = SkipIdleClock(sandbox.clock)
    with ThrowawayDatabase(server_dsn, name, server) as dsn, sandbox as base_url:
        platforms = Platforms(base_url, sim, sandbox.cpu_seconds)
        report: Report = trio.run(simulate, dsn, env, params, platforms, say, clock=sim)
    return attrs.evolve(report, server=server)


def run_sync_bench(config: Config, tenants: int, hours: float, platforms: int, as_json: bool) -> int:
    """`deneva bench sync [--tenants N] [--hours H] [--platforms P] [--json]`: the exit code.

    Progress goes to stderr; stdout gets the table, or one JSON object with `as_json`.
    """
    params = Params(tenants, hours, platforms, workers=config.workers)
    if not logging.getLogger().handlers:  # the engine's warnings, with their details, on stderr
        setup_logging("text", "warning", stream=sys.stderr)

    def produce() -> Report:
        params.check()
        with admin_dsn(config) as dsn:
            return run_benchmark(dsn, params, env=config.env, where=database_where(config))

    return print_report("sync", produce, as_json)
