"""deneva.metrics: every method moves its series in the Prometheus text, labels stay
bounded, the scrape-time gauges come from `collect` (and a failing one costs only the
gauges), each Metrics has its own registry; and the optional DENEVA_METRICS_TOKEN."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import get_args

import prometheus_client
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from deneva.adapters.errors import ErrorCode
from deneva.engine.model import STATUSES
from deneva.errors import SecretError
from deneva.metrics import (
    ERROR_CODES,
    MAX_LABEL_VALUES,
    RUN_BUCKETS,
    RUN_STATUSES,
    Metrics,
    ScrapeValues,
)
from deneva.secrets import METRICS_TOKEN, init_secrets, load_secrets

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: bytes) -> Samples:
    """Every sample of a scrape, by (name, labels); the text must parse whole."""
    out: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, key
            out[key] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in samples if sample == name}


def test_each_counter_moves_by_its_labels() -> None:
    metrics = Metrics()
    before = parse(metrics.render())
    assert value(before, "deneva_runs_started_total", function="sync.report") is None
    assert value(before, "deneva_orphans_rescued_total") == 0
    assert value(before, "deneva_scrape_errors_total") == 0

    for _ in range(3):
        metrics.run_started("sync.report")
    metrics.run_started("janitor")
    metrics.run_finished("sync.report", "succeeded")
    metrics.run_finished("sync.report", "succeeded")
    metrics.run_finished("sync.report", "failed")
    metrics.run_finished("janitor", "cancelled")
    metrics.run_retried("sync.report")
    metrics.orphans_rescued(4)
    metrics.orphans_rescued(0)
    metrics.cache_read("get_report", "hit")
    metrics.cache_read("get_report", "hit")
    metrics.cache_read("get_report", "stale")
    metrics.cache_read("list_campaigns", "miss")
    metrics.platform_calls("google", 3)
    metrics.platform_calls("google")
    metrics.platform_calls("meta", 2)
    metrics.platform_error("meta", "rate_limited")
    metrics.platform_error("meta", "credential_unreadable")
    metrics.token_refresh("google", "refreshed")
    metrics.token_refresh("google", "revoked")
    metrics.janitor_deleted("runs", 120)
    metrics.janitor_deleted("runs", 5)
    metrics.janitor_deleted("sync_log", 0)
    metrics.http_request("/mcp", "POST", 200, 0.001)
    metrics.http_request("/mcp", "POST", 200, 0.002)
    metrics.http_request("/healthz", "GET", 503, 0.001)

    s = parse(metrics.render())
    assert value(s, "deneva_runs_started_total", function="sync.report") == 3
    assert value(s, "deneva_runs_started_total", function="janitor") == 1
    assert value(s, "deneva_runs_finished_total", function="sync.report", status="succeeded") == 2
    assert value(s, "deneva_runs_finished_total", function="sync.report", status="failed") == 1
    assert value(s, "deneva_runs_finished_total", function="janitor", status="cancelled") == 1
    assert value(s, "deneva_runs_finished_total", function="janitor", status="succeeded") is None
    assert value(s, "deneva_run_retries_total", function="sync.report") == 1
    assert value(s, "deneva_orphans_rescued_total") == 4
    assert value(s, "deneva_mcp_cache_reads_total", tool="get_report", result="hit") == 2
    assert value(s, "deneva_mcp_cache_reads_total", tool="get_report", result="stale") == 1
    assert value(s, "deneva_mcp_cache_reads_total", tool="list_campaigns", result="miss") == 1
    assert value(s, "deneva_platform_calls_total", platform="google") == 4
    assert value(s, "deneva_platform_calls_total", platform="meta") == 2
    assert value(s, "deneva_platform_errors_total", platform="meta", code="rate_limited") == 1
    assert value(s, "deneva_platform_errors_total", platform="meta", code="credential_unreadable") == 1
    assert value(s, "deneva_token_refreshes_total", platform="google", outcome="refreshed") == 1
    assert value(s, "deneva_token_refreshes_total", platform="google", outcome="revoked") == 1
    assert value(s, "deneva_janitor_deleted_rows_total", table="runs") == 125
    assert value(s, "deneva_janitor_deleted_rows_total", table="sync_log") == 0
    assert value(s, "deneva_http_requests_total", route="/mcp", method="POST", status="200") == 2
    assert value(s, "deneva_http_requests_total", route="/healthz", method="GET", status="503") == 1
    assert value(s, "deneva_http_request_duration_seconds_count", route="/mcp") == 2
    assert value(s, "deneva_http_request_duration_seconds_sum", route="/mcp") == pytest.approx(0.003)


def test_histograms_count_each_duration_in_its_bucket() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.001, 0.003, 0.003, 400.0):
        metrics.observe_run("sync.report", seconds)
    metrics.observe_step("sync.report", 0.02)
    s = parse(metrics.render())

    def bucket(name: str, le: str) -> float | None:
        return value(s, name, function="sync.report", le=le)

    run = "deneva_run_duration_seconds_bucket"
    assert bucket(run, "0.001") == 2  # an observation equal to a bound is in its bucket
    assert bucket(run, "0.0025") == 2
    assert bucket(run, "0.005") == 4
    assert bucket(run, "300.0") == 4
    assert bucket(run, "+Inf") == 5
    assert len(label_values(s, run, "le")) == len(RUN_BUCKETS) + 1
    assert value(s, "deneva_run_duration_seconds_count", function="sync.report") == 5
    assert value(s, "deneva_run_duration_seconds_sum", function="sync.report") == pytest.approx(400.0074)
    step = "deneva_step_duration_seconds_bucket"
    assert bucket(step, "0.01") == 0 and bucket(step, "0.025") == 1 and bucket(step, "+Inf") == 1
    assert value(s, "deneva_step_duration_seconds_count", function="sync.report") == 1


def test_fixed_label_sets_fold_unknown_values_into_other() -> None:
    metrics = Metrics()
    metrics.run_finished("f", "exploded")
    metrics.cache_read("get_report", "lukewarm")
    metrics.platform_error("google", "teapot")
    metrics.http_request("/e/SECRETKEY123", "BREW", 200, 0.001)
    metrics.http_request("/mcp", "POST", 1234, 0.001)
    text = metrics.render()
    assert b"SECRETKEY123" not in text and b"BREW" not in text and b"exploded" not in text
    s = parse(text)
    assert value(s, "deneva_runs_finished_total", function="f", status="other") == 1
    assert value(s, "deneva_mcp_cache_reads_total", tool="get_report", result="other") == 1
    assert value(s, "deneva_platform_errors_total", platform="google", code="other") == 1
    assert value(s, "deneva_http_requests_total", route="other", method="other", status="200") == 1
    assert value(s, "deneva_http_requests_total", route="/mcp", method="POST", status="0") == 1
    assert value(s, "deneva_http_request_duration_seconds_count", route="other") == 1


def test_an_open_label_keeps_its_first_values_then_folds_into_other(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    extra = 25
    with caplog.at_level(logging.WARNING, logger="deneva.metrics"):
        for n in range(MAX_LABEL_VALUES + extra):
            metrics.run_started(f"function-{n}")
            metrics.observe_run(f"function-{n}", 0.01)
            metrics.run_started(f"function-{n}")
    s = parse(metrics.render())
    started = label_values(s, "deneva_runs_started_total", "function")
    assert len(started) == MAX_LABEL_VALUES + 1 and "other" in started
    assert f"function-{MAX_LABEL_VALUES - 1}" in started and f"function-{MAX_LABEL_VALUES}" not in started
    assert value(s, "deneva_runs_started_total", function="other") == 2 * extra
    assert value(s, "deneva_runs_started_total", function="function-0") == 2
    assert value(s, "deneva_run_duration_seconds_count", function="other") == extra
    assert len(label_values(s, "deneva_run_duration_seconds_count", "function")) == MAX_LABEL_VALUES + 1
    warnings = [r for r in caplog.records if r.name == "deneva.metrics"]
    assert len(warnings) == 1 and "function" in warnings[0].getMessage()


def test_label_sets_match_the_codes_the_daemon_uses() -> None:
    assert set(ERROR_CODES) == set(get_args(ErrorCode)) | {"credential_unreadable"}
    assert RUN_STATUSES == STATUSES


def test_a_counter_never_goes_down() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="only goes up"):
        metrics.janitor_deleted("runs", -1)
    with pytest.raises(ValueError, match="only goes up"):
        metrics.platform_calls("google", -2)
    with pytest.raises(ValueError, match="only goes up"):
        metrics.orphans_rescued(-3)
    s = parse(metrics.render())
    assert value(s, "deneva_orphans_rescued_total") == 0
    assert value(s, "deneva_janitor_deleted_rows_total", table="runs") is None


def test_each_metrics_has_its_own_registry_and_never_the_global_one() -> None:
    first, second = Metrics(), Metrics()
    first.run_started("f")
    first.run_started("f")
    second.run_started("f")
    assert value(parse(first.render()), "deneva_runs_started_total", function="f") == 2
    assert value(parse(second.render()), "deneva_runs_started_total", function="f") == 1
    assert first.registry is not second.registry
    assert first.registry is not prometheus_client.REGISTRY
    assert not any(n.startswith("deneva_") for n in names(parse(prometheus_client.generate_latest())))


def test_process_metrics_are_there_unless_turned_off() -> None:
    full = names(parse(Metrics().render()))
    assert "python_info" in full and "process_cpu_seconds_total" in full
    bare = names(parse(Metrics(process=False).render()))
    assert "python_info" not in bare and "process_cpu_seconds_total" not in bare
    assert "deneva_scrape_errors_total" in bare


def test_scrape_time_gauges_come_from_the_values_and_are_absent_when_unknown() -> None:
    metrics = Metrics()
    full = ScrapeValues(
        queue_depth=12,
        oldest_due_age_s=3.5,
        heartbeat_age_s=41.0,
        mcp_sessions_open=7,
        runs_by_status={"queued": 10, "running": 2, "mystery": 1, "puzzle": 2},
    )
    s = parse(metrics.render(full))
    assert value(s, "deneva_queue_depth") == 12
    assert value(s, "deneva_queue_oldest_due_age_seconds") == 3.5
    assert value(s, "deneva_heartbeat_age_seconds") == 41.0
    assert value(s, "deneva_mcp_sessions_open") == 7
    assert value(s, "deneva_runs", status="queued") == 10
    assert value(s, "deneva_runs", status="running") == 2
    assert value(s, "deneva_runs", status="other") == 3

    partial = parse(metrics.render(ScrapeValues(queue_depth=0)))
    assert value(partial, "deneva_queue_depth") == 0
    for name in (
        "deneva_queue_oldest_due_age_seconds",
        "deneva_heartbeat_age_seconds",
        "deneva_mcp_sessions_open",
    ):
        assert name not in names(partial)
    assert "deneva_runs" not in names(partial)
    # The values are for that one rendering only.
    assert "deneva_queue_depth" not in names(parse(metrics.render()))


async def test_a_failing_collect_leaves_the_gauges_out_and_counts_a_scrape_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    metrics.run_started("f")
    calls = 0
    secret_detail = "password=hunter2-do-not-log"

    async def broken() -> ScrapeValues:
        nonlocal calls
        calls += 1
        raise OSError(f"connection refused ({secret_detail})")

    async def working() -> ScrapeValues:
        return ScrapeValues(queue_depth=5, heartbeat_age_s=2.0)

    with caplog.at_level(logging.INFO, logger="deneva.metrics"):
        first = parse(await metrics.scrape(broken))
        second = parse(await metrics.scrape(broken))
        recovered = parse(await metrics.scrape(working))
    assert calls == 2
    assert value(first, "deneva_runs_started_total", function="f") == 1
    assert value(first, "deneva_scrape_errors_total") == 1
    assert "deneva_queue_depth" not in names(first)
    assert value(second, "deneva_scrape_errors_total") == 2
    assert value(recovered, "deneva_scrape_errors_total") == 2
    assert value(recovered, "deneva_queue_depth") == 5
    assert value(recovered, "deneva_heartbeat_age_seconds") == 2.0
    # Said once per outage, and once when it is over; the exception's text is not logged.
    logged = [r for r in caplog.records if r.name == "deneva.metrics"]
    assert [r.levelno for r in logged] == [logging.WARNING, logging.INFO]
    assert logged[0].__dict__["problem"] == "OSError"
    assert all(secret_detail not in r.getMessage() and not r.exc_info for r in logged)


async def test_a_collect_that_hangs_times_out_as_a_scrape_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()

    async def hangs() -> ScrapeValues:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    started = trio.current_time()
    s = parse(await metrics.scrape(hangs, timeout_s=5.0))
    assert trio.current_time() - started == pytest.approx(5.0)
    assert value(s, "deneva_scrape_errors_total") == 1
    assert "deneva_queue_depth" not in names(s)


async def test_a_cancelled_scrape_is_not_a_scrape_error() -> None:
    metrics = Metrics()

    async def hangs() -> ScrapeValues:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    with trio.CancelScope() as scope:
        scope.cancel()
        await metrics.scrape(hangs)
    assert scope.cancelled_caught
    assert value(parse(metrics.render()), "deneva_scrape_errors_total") == 0


def test_unknown_gauges_have_no_sample_rather_than_nan() -> None:
    s = parse(Metrics().render(ScrapeValues()))
    assert not any(math.isnan(v) for (name, _), v in s.items() if name.startswith("deneva_"))


# -- the optional DENEVA_METRICS_TOKEN -------------------------------------------------


def test_the_metrics_token_is_optional_not_generated_and_checked_when_present(tmp_path: Path) -> None:
    assert METRICS_TOKEN not in init_secrets(tmp_path)
    assert not (tmp_path / METRICS_TOKEN).exists()
    bare = load_secrets(tmp_path)
    assert bare.metrics_token is None and len(bare.all()) == 4

    token = "metrics-token-0123456789abcdef"
    (tmp_path / METRICS_TOKEN).write_text(token + "\n")
    loaded = load_secrets(tmp_path)
    assert loaded.metrics_token is not None and loaded.metrics_token.reveal() == token
    assert loaded.metrics_token in loaded.all()  # registered with the log redactor with the others
    assert token not in repr(loaded)

    (tmp_path / METRICS_TOKEN).write_text("short\n")
    with pytest.raises(SecretError, match="^DENEVA_METRICS_TOKEN: .*at least 16 characters") as short:
        load_secrets(tmp_path)
    assert "short" not in str(short.value)
    (tmp_path / METRICS_TOKEN).write_text("two halves of a long enough token\n")
    with pytest.raises(SecretError, match="^DENEVA_METRICS_TOKEN: .*without spaces"):
        load_secrets(tmp_path)
    (tmp_path / METRICS_TOKEN).write_text("")
    with pytest.raises(SecretError, match="^DENEVA_METRICS_TOKEN: .* is empty"):
        load_secrets(tmp_path)
