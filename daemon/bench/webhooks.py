"""`deneva bench webhooks`: signed Standard Webhooks deliveries at a fixed offered rate.

What it does, on a throwaway database `deneva_bench_webhooks_<pid>` made on the
configured server (the embedded one under the state directory, or DENEVA_DATABASE_URL's)
and dropped at the end, whatever happens:

1. `deneva run` in a subprocess on that database (secrets made by `deneva secrets init`,
   so a `whsec_` DENEVA_SIGNING_KEY; no ad platform synced; HTTP on a free loopback port;
   log level warning): the daemon as deployed, its dispatcher running what arrives.
2. An open-loop sender in this process (trio and httpx over keep-alive connections):
   delivery `i` is due at `i / rate` s and sent then, whatever the answers before it;
   its latency counts from that due time to its answer, so a slow server pays for the
   deliveries it held back. Each is `POST /webhooks/events` with one `deneva/noop`
   event, signed as a Standard Webhooks sender signs (the `standardwebhooks` package,
   the timestamp of the moment it is sent). A share `duplicates` of them repeat the
   `webhook-id` and body of an earlier one (a sender's retry, sometimes while the first
   is still in flight).
3. Every answer is checked: 202 for a new id, 200 `duplicate` for a repeated one;
   anything else, or no answer within 10 s, is an error. Then the database is checked:
   as many stored deliveries, events and `deneva-noop` runs as distinct webhook ids.

Reported: offered and achieved rates, p50 / p99 / max latency of the 2xx answers (new
and duplicate, and each kind apart), errors, the check. Target (SPEC §13, seed 001):
p99 <= 50 ms. Missing it is reported, not an error; a failed check is an error.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import httpx
import trio

from deneva.admin import AppLogin, database_urls, owner_url, provision_login, run_async
from deneva.bench.common import BenchError, Say, database_where, print_report, say_to_stderr
from deneva.bench.engine import ServerInfo, ThrowawayDatabase, database_dsn, machine_info, server_info
from deneva.bench.mcp import ServerProcess, deneva_server
from deneva.config import Config

TARGET_P99_MS = 50.0
ANSWER_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 60.0
WARMUP = 20  # deliveries before the measured ones (connections opened, code paths warm)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of `values`; None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@attrs.frozen
class Delivery:
    due_s: float  # after the start
    webhook_id: str
    body: bytes
    duplicate: bool


def plan_deliveries(rate: float, duration_s: float, duplicates: float, seed: int = 15) -> list[Delivery]:
    """The schedule: `rate * duration_s` deliveries, a share `duplicates` of them repeating
    an earlier id and body (chosen at random among the last 100 ids)."""
    rng = random.Random(seed)
    count = max(1, round(rate * duration_s))
    planned: list[Delivery] = []
    fresh: list[Delivery] = []
    for i in range(count):
        if fresh and rng.random() < duplicates:
            first = rng.choice(fresh[-100:])
            planned.append(Delivery(i / rate, first.webhook_id, first.body, True))
            continue
        body = json.dumps({"name": "deneva/noop", "data": {"n": i}}).encode()
        delivery = Delivery(i / rate, f"msg_bench_{i:07d}", body, False)
        fresh.append(delivery)
        planned.append(delivery)
    return planned


@attrs.frozen
class Outcome:
    latency_ms: float
    status: int  # 0: no answer
    duplicate: bool  # the delivery repeated an earlier id
    problem: str | None = None


async def send_all(
    base: str, key_text: str, planned: list[Delivery], say: Say
) -> tuple[list[Outcome], float, dict[float, float]]:
    """Send the schedule open loop; the outcomes, the seconds the sending took, and the
    daemon's latency buckets after the warm-up."""
    url = base + "/webhooks/events"
    from standardwebhooks import Webhook

    sender = Webhook(key_text)  # the whsec_ form, as a sender is given it
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=ANSWER_TIMEOUT_S) as http:

        async def deliver(delivery: Delivery, due: float, record: bool) -> None:
            stamp = datetime.now(UTC)
            headers = {
                "webhook-id": delivery.webhook_id,
                "webhook-timestamp": str(int(stamp.timestamp())),
                "webhook-signature": sender.sign(delivery.webhook_id, stamp, delivery.body),
                "content-type": "application/json",
            }
            status, problem = 0, None
            try:
                response = await http.post(url, content=delivery.body, headers=headers)
                status = response.status_code
                # 202 stored, 200 a duplicate: which of two copies in flight at once is
                # stored is a race, so the counts are checked in the end, not each answer.
                if status not in (200, 202):
                    problem = f"HTTP {status}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if record:
                outcomes.append(
                    Outcome((time.perf_counter() - due) * 1000, status, delivery.duplicate, problem)
                )

        async with trio.open_nursery() as nursery:  # warm-up: its own ids, closed loop
            for i in range(WARMUP):
                body = json.dumps({"name": "deneva/noop", "data": {"warmup": i}}).encode()
                nursery.start_soon(
                    deliver, Delivery(0, f"msg_warmup_{i}", body, False), time.perf_counter(), False
                )
        before = await trio.to_thread.run_sync(server_quantiles, base + "/metrics")
        say(f"sending {len(planned):,} deliveries open loop")
        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for delivery in planned:
                due = began + delivery.due_s
                await trio.sleep_until(trio.current_time() + max(0.0, due - time.perf_counter()))
                nursery.start_soon(deliver, delivery, due, True)
        took = time.perf_counter() - began
    return outcomes, took, before


async def stored_counts(dsn: str, expected: int) -> dict[str, int]:
    """Deliveries, events and no-op runs stored, once the runs have all finished (bounded)."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM webhook_deliveries) AS deliveries, "
                "(SELECT count(*) FROM engine_events WHERE name = 'deneva/noop') AS events, "
                "(SELECT count(*) FROM engine_runs WHERE function_id = 'deneva-noop') AS runs, "
                "(SELECT count(*) FROM engine_runs WHERE function_id = 'deneva-noop' "
                " AND status = 'succeeded') AS succeeded"
            )
            assert row is not None
            counts = {k: int(row[k]) for k in ("deliveries", "events", "runs", "succeeded")}
            if counts["succeeded"] >= expected or time.monotonic() > deadline:
                return counts
            await asyncio.sleep(0.2)  # this runs on asyncio (run_async)
    finally:
        await conn.close()


def server_quantiles(metrics_url: str, since: dict[float, float] | None = None) -> dict[float, float]:
    """The daemon's own `deneva_http_request_duration_seconds` buckets for
    `/webhooks/events` (cumulative counts by upper bound, minus `since`): its side of the
    latency, without the sender's."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(metrics_url, timeout=10).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "deneva_http_request_duration_seconds_bucket"
                and sample.labels.get("route") == "/webhooks/events"
            ):
                bound = float(sample.labels["le"])
                buckets[bound] = sample.value - (since or {}).get(bound, 0.0)
    return buckets


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-quantile: `p99 <= that`."""
    if not buckets:
        return None
    total = buckets.get(math.inf, max(buckets.values()))
    for bound in sorted(buckets):
        if total and buckets[bound] >= q * total:
            return bound * 1000
    return None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


@attrs.frozen
class Report:
    rate: float
    duration_s: float
    duplicates_share: float
    server: ServerInfo
    sent: int
    duplicates: int
    distinct: int
    took_s: float
    latency_ms: dict[str, float | None]
    latency_new_ms: dict[str, float | None]
    latency_duplicate_ms: dict[str, float | None]
    statuses: dict[str, int]
    errors: int
    first_errors: tuple[str, ...]
    stored: dict[str, int]
    server_side_ms: dict[str, float | None] = attrs.Factory(dict)

    @property
    def check_ok(self) -> bool:
        """Each distinct id stored exactly once: answered 202 once, one delivery, one event, one run."""
        expected = self.distinct + WARMUP
        return (
            self.statuses.get("202", 0) == self.distinct
            and self.stored["deliveries"] == expected
            and self.stored["events"] == expected
            and self.stored["runs"] == expected
        )

    @property
    def target_met(self) -> bool | None:
        p99 = self.latency_ms.get("p99")
        return None if p99 is None else p99 <= TARGET_P99_MS and self.errors == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": "webhooks",
            "offered_rate": self.rate,
            "achieved_rate": round(self.sent / self.took_s, 1) if self.took_s else None,
            "duration_s": self.duration_s,
            "duplicates_share": self.duplicates_share,
            "sent": self.sent,
            "duplicates": self.duplicates,
            "distinct_ids": self.distinct,
            "latency_ms": self.latency_ms,
            "latency_new_ms": self.latency_new_ms,
            "latency_duplicate_ms": self.latency_duplicate_ms,
            "statuses": self.statuses,
            "errors": self.errors,
            "first_errors": list(self.first_errors),
            "stored": self.stored,
            "server_side_bucket_ms": self.server_side_ms,
            "warmup_deliveries": WARMUP,
            "check": "ok" if self.check_ok else "failed",
            "target_p99_ms": TARGET_P99_MS,
            "target_met": self.target_met,
            "postgres": attrs.asdict(self.server),
            "machine": machine_info(),
        }

    def table(self) -> str:
        expected = self.distinct + WARMUP
        lines = [
            f"deneva bench webhooks: POST /webhooks/events, {self.rate:g} deliveries/s offered open loop "
            f"for {self.duration_s:g} s, {self.duplicates_share:.0%} duplicates",
            f"PostgreSQL {self.server.version} ({self.server.where}), fsync {self.server.fsync}, "
            f"synchronous_commit {self.server.synchronous_commit}",
            f"sent {self.sent:,} ({self.duplicates:,} repeating an earlier webhook-id, "
            f"{self.distinct:,} distinct) in {self.took_s:.1f} s: {self.sent / self.took_s:,.1f}/s",
            f"latency of 2xx   p50 {_ms(self.latency_ms['p50'])}   p99 {_ms(self.latency_ms['p99'])}   "
            f"max {_ms(self.latency_ms['max'])}",
            f"  new ids        p50 {_ms(self.latency_new_ms['p50'])}   p99 {_ms(self.latency_new_ms['p99'])}",
            f"  duplicates     p50 {_ms(self.latency_duplicate_ms['p50'])}   "
            f"p99 {_ms(self.latency_duplicate_ms['p99'])}",
            "  daemon's side  p50 <= "
            + _ms(self.server_side_ms.get("p50"))
            + "   p99 <= "
            + _ms(self.server_side_ms.get("p99"))
            + "   (its /metrics histogram buckets for the route)",
            f"answers {dict(sorted(self.statuses.items()))}, errors {self.errors}",
            f"stored (with {WARMUP} warm-up deliveries): {self.stored['deliveries']:,} deliveries, "
            f"{self.stored['events']:,} events, {self.stored['runs']:,} runs "
            f"({self.stored['succeeded']:,} succeeded); expected {expected:,} each: "
            + ("ok" if self.check_ok else "FAILED"),
            f"target p99 <= {TARGET_P99_MS:g} ms: "
            + {True: "met", False: "MISSED", None: "not measured"}[self.target_met],
        ]
        lines += [f"  error: {e}" for e in self.first_errors]
        return "\n".join(lines)


def latencies(outcomes: list[Outcome]) -> dict[str, float | None]:
    values = [o.latency_ms for o in outcomes if o.problem is None and 200 <= o.status < 300]
    return {
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


def run_benchmark(
    server_dsn: str,
    *,
    env: str,
    rate: float,
    duration_s: float,
    duplicates: float,
    workers: int = 256,
    where: str = "",
    say: Say = say_to_stderr,
    app_dsn: str | None = None,
    login: AppLogin | None = None,
) -> Report:
    from deneva.migrations import apply_migrations
    from deneva.secrets import init_secrets, load_secrets

    info = run_async(lambda: server_info(server_dsn, where))
    name = f"deneva_bench_webhooks_{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="deneva-bench-webhooks-"))
    say(f"PostgreSQL {info.version}; {os.cpu_count()} cores; database {name}; work directory {workdir}")
    planned = plan_deliveries(rate, duration_s, duplicates)
    server: ServerProcess | None = None
    try:
        secrets_dir = workdir / "secrets"
        init_secrets(secrets_dir)
        key_text = load_secrets(secrets_dir).signing_key.reveal()
        with ThrowawayDatabase(server_dsn, name, info) as dsn:
            trio.run(apply_migrations, dsn, env)
            if login is not None:
                run_async(lambda: provision_login(dsn, login))
            pool_dsn = None if app_dsn is None else database_dsn(app_dsn, name)
            server = deneva_server(dsn, env, workdir, secrets_dir, workers, name="deneva", app_dsn=pool_dsn)
            server.env["DENEVA_PLATFORMS"] = "none"
            started = server.start("/healthz")
            say(f"deneva run answered after {started:.1f} s")
            base = server.url.removesuffix("/mcp")
            outcomes, took, before = trio.run(send_all, base, key_text, planned, say)
            buckets = server_quantiles(base + "/metrics", before)
            distinct = len({d.webhook_id for d in planned})
            stored = run_async(lambda: stored_counts(dsn, distinct + WARMUP))
            server.stop()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    problems = [o.problem for o in outcomes if o.problem is not None]
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
    report = Report(
        rate,
        duration_s,
        duplicates,
        info,
        len(outcomes),
        sum(1 for d in planned if d.duplicate),
        distinct,
        took,
        latencies(outcomes),
        latencies([o for o in outcomes if not o.duplicate]),
        latencies([o for o in outcomes if o.duplicate]),
        statuses,
        len(problems),
        tuple(dict.fromkeys(problems))[:5],
        stored,
        {"p50": bucket_quantile(buckets, 0.5), "p99": bucket_quantile(buckets, 0.99)},
    )
    if not report.check_ok:
        raise BenchError(
            f"stored {stored} for {distinct + WARMUP} distinct webhook ids: a delivery was lost or doubled"
        )
    return report


def run_webhooks_bench(
    config: Config, rate: float, duration_s: float, duplicates: float, as_json: bool
) -> int:
    """`deneva bench webhooks`: print the figures; the exit code (0 when it ran and the
    stored counts check out, the latency target met or not)."""
    where = database_where(config)

    def produce() -> Report:
        with database_urls(config) as urls:
            return run_benchmark(
                owner_url(urls),
                app_dsn=urls.app,
                login=urls.login,
                env=config.env,
                rate=rate,
                duration_s=duration_s,
                duplicates=duplicates,
                workers=config.workers,
                where=where,
            )

    return print_report("webhooks", produce, as_json)
