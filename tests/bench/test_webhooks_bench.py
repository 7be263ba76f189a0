"""Smoke test of `deneva bench webhooks`: it runs end to end on the test session's
Postgres (a few dozen deliveries, never timed) and its check counts what was stored."""

from __future__ import annotations

from deneva.admin import AppLogin
from deneva.bench.webhooks import WARMUP, bucket_quantile, plan_deliveries, run_benchmark
from deneva.pgembed import APP_LOGIN
from tests.conftest import TEST_ENV, Cluster


def test_the_schedule_repeats_a_share_of_earlier_ids_with_their_bodies() -> None:
    planned = plan_deliveries(rate=100, duration_s=10, duplicates=0.2)
    assert len(planned) == 1000 and planned[1].due_s == 0.01
    repeats = [d for d in planned if d.duplicate]
    assert 150 <= len(repeats) <= 250
    first = {d.webhook_id: d for d in planned if not d.duplicate}
    assert all(first[d.webhook_id].body == d.body and first[d.webhook_id].due_s < d.due_s for d in repeats)
    assert len(first) == len({d.webhook_id for d in planned})


def test_bucket_quantile_is_the_bound_of_the_bucket_holding_it() -> None:
    buckets = {0.005: 50.0, 0.01: 98.0, 0.025: 100.0, float("inf"): 100.0}
    assert bucket_quantile(buckets, 0.5) == 5.0 and bucket_quantile(buckets, 0.99) == 25.0
    assert bucket_quantile({}, 0.5) is None


def test_webhooks_bench_runs_end_to_end_and_counts_one_of_everything_per_id(cluster: Cluster) -> None:
    report = run_benchmark(
        cluster.dsn("postgres"),
        env=TEST_ENV,
        rate=40,
        duration_s=1,
        duplicates=0.3,
        app_dsn=cluster.app_dsn("postgres"),
        login=AppLogin(APP_LOGIN, cluster.pg.app_password()),
        say=lambda message: None,
    )
    figures = report.as_json()
    assert figures["check"] == "ok" and figures["errors"] == 0
    assert figures["sent"] == 40 and figures["duplicates"] + figures["distinct_ids"] == 40
    assert figures["statuses"] == {"202": figures["distinct_ids"], "200": figures["duplicates"]}
    assert figures["stored"]["deliveries"] == figures["stored"]["runs"] == figures["distinct_ids"] + WARMUP
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert "target p99 <= 50 ms" in report.table()
