"""Retention (seed 000 §E, SPEC §11): the janitor's passes, each an engine function so
every pass is a durable run with a status record (`deneva runs --function ...`).

- `gdpr-purge-cache`: cached reports expired longer ago than the grace period (no
  refresh brought them back: the account is gone or broken), or fetched before the
  retention (90 days), are deleted.
- `gdpr-purge-sync-log`: sync_log rows older than 30 days are deleted, and browser
  connect flows (`deneva.connect`) that expired more than a day ago.
- `gdpr-archive-audit`: audit_log rows older than 12 months are moved to
  audit_log_archive, each batch in one statement (row count preserved).
- `janitor-prune-oauth`: the built-in authorization server's codes, connect codes and
  tokens expired longer ago than 7 days (grants stay, revoked or not, for the record),
  and the operator console's sessions once expired.
- `janitor-prune-engine`: the engine's own tables: finished runs with their steps
  (succeeded after 7 days, failed and cancelled after 30), events, expired idempotency
  keys, old cron ticks (never a function's latest), rate-limit windows and the inbound
  webhook deliveries (`webhook_deliveries`, after 7 days: their senders' retries are over).

Every delete is one bounded statement (at most `batch` rows, 10,000 by default), its
own short transaction; between two, a pass rests for `rest_ratio` times as long as the
statement took, so the engine keeps most of the database meanwhile. Each pass writes a
`gdpr.*` or `janitor.*` audit event with its counts. The janitor actor
(`actors/janitor.py`) fires the passes on their configured schedules; `deneva invoke`
runs one now.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

from deneva.clock import Clock, as_datetime
from deneva.config import Config
from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.engine import PRUNABLE_STATUSES, Engine
from deneva.engine.functions import CronTrigger, Function, Registry
from deneva.sql import query

DAY = 86_400.0
MAX_BATCH = 10_000
PURGE_CACHE = "gdpr-purge-cache"
PURGE_SYNC_LOG = "gdpr-purge-sync-log"
ARCHIVE_AUDIT = "gdpr-archive-audit"
PRUNE_ENGINE = "janitor-prune-engine"
PRUNE_OAUTH = "janitor-prune-oauth"
PASSES = (PURGE_CACHE, PURGE_SYNC_LOG, ARCHIVE_AUDIT, PRUNE_ENGINE, PRUNE_OAUTH)
_PRUNE_OAUTH = {
    "oauth_tokens": query("retention_purge_oauth_tokens"),
    "oauth_codes": query("retention_purge_oauth_codes"),
    "oauth_connect_codes": query("retention_purge_oauth_connect_codes"),
}
_PURGE_ADMIN_SESSIONS = query("retention_purge_admin_sessions")
_PURGE_EXPIRED_CACHE = query("retention_purge_expired_cache")
_PURGE_OLD_CACHE = query("retention_purge_old_cache")
_PURGE_SYNC_LOG = query("retention_purge_sync_log")
_PURGE_CONNECT_FLOWS = query("retention_purge_connect_flows")
_ARCHIVE_AUDIT = query("retention_archive_audit")
_AUDIT_EVENT = query("retention_audit_event")


@attrs.frozen(kw_only=True)
class Retention:
    """How long things are kept, in seconds (validated by the config, which names the key)."""

    cache_s: float = 90 * DAY
    cache_grace_s: float = 1 * DAY
    sync_log_s: float = 30 * DAY
    audit_s: float = 365 * DAY
    succeeded_runs_s: float = 7 * DAY
    failed_runs_s: float = 30 * DAY  # failed and cancelled runs
    events_s: float = 7 * DAY
    cron_ticks_s: float = 7 * DAY
    oauth_s: float = 7 * DAY  # OAuth codes and tokens, past their expiry
    rate_windows_s: float = 2 * DAY  # rate-limit windows; at least twice any limit's period
    connect_flows_s: float = 1 * DAY  # browser connect flows, after they expired
    webhook_deliveries_s: float = 7 * DAY  # inbound webhooks' delivery ids (their dedup)
    batch: int = attrs.field(
        default=MAX_BATCH, validator=[attrs.validators.ge(1), attrs.validators.le(MAX_BATCH)]
    )
    rest_ratio: float = 1.0  # rest this many times a statement's duration before the next

    def run_retention_s(self, status: str) -> float:
        return self.succeeded_runs_s if status == "succeeded" else self.failed_runs_s


@attrs.frozen(kw_only=True)
class JanitorPlan:
    """When each pass runs (cron expressions, validated at start) and what it keeps."""

    schedules: Mapping[str, str] = attrs.Factory(
        lambda: {
            PURGE_CACHE: "0 2 * * *",
            PURGE_SYNC_LOG: "15 2 * * *",
            ARCHIVE_AUDIT: "30 2 * * *",
            PRUNE_ENGINE: "*/15 * * * *",
            PRUNE_OAUTH: "45 2 * * *",
        }
    )
    retention: Retention = Retention()

    def entries(self, registry: Registry) -> list[tuple[Function, CronTrigger]]:
        return [
            (registry.get(pass_id), CronTrigger(cron)) for pass_id, cron in sorted(self.schedules.items())
        ]


@attrs.frozen
class JanitorServices:
    db: Database
    engine: Engine
    clock: Clock
    plan: JanitorPlan
    observe_deleted: Callable[[str, int], None] = lambda table, n: None
    # Each delete statement's duration, by table (how long it held its row locks).
    observe_statement: Callable[[str, float], None] = lambda table, seconds: None


async def batches(
    delete: Callable[[int], Awaitable[int]],
    retention: Retention,
    observe: Callable[[float], None] = lambda seconds: None,
) -> int:
    """Run `delete(limit)` until a statement deletes fewer than `limit` rows, resting
    between statements; the total deleted. `observe` gets each statement's duration."""
    total = 0
    while True:
        began = time.perf_counter()
        deleted = await delete(retention.batch)
        took = time.perf_counter() - began
        observe(took)
        total += deleted
        if deleted < retention.batch:
            return total
        await trio.sleep(took * retention.rest_ratio)


def _table_name(table: str) -> str:
    """The database table behind one of the engine's PRUNABLE_TABLES."""
    return table if table == "webhook_deliveries" else f"engine_{table}"


def _timer(services: JanitorServices, table: str) -> Callable[[float], None]:
    return lambda seconds: services.observe_statement(table, seconds)


def register_retention(registry: Registry, services_of: Callable[[], JanitorServices]) -> None:
    async def audit(services: JanitorServices, event_type: str, details: dict[str, Any]) -> None:
        await services.db.execute(_AUDIT_EVENT, event_type, details, as_datetime(services.clock.now()))

    async def delete_older(services: JanitorServices, sql: str, age_s: float, table: str) -> int:
        """Batches of `sql` (cutoff, limit) until the rows older than `age_s` are gone."""
        db, before = services.db, as_datetime(services.clock.now() - age_s)
        deleted = await batches(
            lambda n: db.fetchval(sql, before, n), services.plan.retention, _timer(services, table)
        )
        services.observe_deleted(table, deleted)
        return deleted

    async def purge_cache(ctx: Context) -> dict[str, Any]:
        services = services_of()
        r = services.plan.retention
        expired = await delete_older(services, _PURGE_EXPIRED_CACHE, r.cache_grace_s, "metric_cache")
        old = await delete_older(services, _PURGE_OLD_CACHE, r.cache_s, "metric_cache")
        counts = {"deleted": expired + old, "expired": expired, "old": old}
        await audit(services, "gdpr.purge_cache", counts)
        return counts

    async def purge_sync_log(ctx: Context) -> dict[str, Any]:
        services = services_of()
        r = services.plan.retention
        deleted = await delete_older(services, _PURGE_SYNC_LOG, r.sync_log_s, "sync_log")
        flows = await delete_older(services, _PURGE_CONNECT_FLOWS, r.connect_flows_s, "connect_flows")
        counts = {"deleted": deleted, "connect_flows": flows}
        await audit(services, "gdpr.purge_sync_log", counts)
        return counts

    async def archive_audit(ctx: Context) -> dict[str, Any]:
        services = services_of()
        moved = await delete_older(services, _ARCHIVE_AUDIT, services.plan.retention.audit_s, "audit_log")
        await audit(services, "gdpr.archive_audit", {"moved": moved})
        return {"moved": moved}

    async def prune_engine(ctx: Context) -> dict[str, Any]:
        services = services_of()
        r, engine, now = services.plan.retention, services.engine, services.clock.now()
        runs: dict[str, int] = {}
        steps = 0
        for status in PRUNABLE_STATUSES:
            before = now - r.run_retention_s(status)
            counted = {"steps": 0}

            async def runs_of(
                limit: int, status: str = status, before: float = before, counted: dict[str, int] = counted
            ) -> int:
                pruned, pruned_steps = await engine.prune_runs(status, before, limit)
                counted["steps"] += pruned_steps
                return pruned

            runs[status] = await batches(runs_of, r, _timer(services, "engine_runs"))
            steps += counted["steps"]
        # A rate-limit window is kept for twice the longest period any function limits by.
        periods = [f.rate_limit.period_s for f in engine.registry.all() if f.rate_limit is not None]
        tables = {
            "events": now - r.events_s,
            "idempotency_keys": now,
            "cron_ticks": now - r.cron_ticks_s,
            "rate_windows": now - max([r.rate_windows_s, *(2 * p for p in periods)]),
            "webhook_deliveries": now - r.webhook_deliveries_s,
        }
        pruned: dict[str, int] = {}
        for table, before in tables.items():

            def rows_of(limit: int, table: str = table, before: float = before) -> Awaitable[int]:
                return engine.prune_table(table, before, limit)

            pruned[table] = await batches(rows_of, r, _timer(services, _table_name(table)))
        counts = {"runs": runs, "steps": steps, **pruned}
        services.observe_deleted("engine_runs", sum(runs.values()))
        services.observe_deleted("engine_steps", steps)
        for table, n in pruned.items():
            services.observe_deleted(_table_name(table), n)
        await audit(services, "janitor.prune_engine", counts)
        return counts

    async def prune_oauth(ctx: Context) -> dict[str, Any]:
        services = services_of()
        age = services.plan.retention.oauth_s
        counts = {table: await delete_older(services, sql, age, table) for table, sql in _PRUNE_OAUTH.items()}
        # A console session is of no use once expired: no grace.
        counts["admin_sessions"] = await delete_older(services, _PURGE_ADMIN_SESSIONS, 0.0, "admin_sessions")
        await audit(services, "janitor.prune_oauth", counts)
        return counts

    for pass_id, handler in (
        (PURGE_CACHE, purge_cache),
        (PURGE_SYNC_LOG, purge_sync_log),
        (ARCHIVE_AUDIT, archive_audit),
        (PRUNE_ENGINE, prune_engine),
        (PRUNE_OAUTH, prune_oauth),
    ):
        # No trigger here: the janitor actor fires them on their configured schedules. A
        # failed pass is tried once more (seed 000 §E). No concurrency key: two passes that
        # overlap (one outlasting its period) cannot conflict: bounded deletes that skip
        # locked rows.
        registry.add(Function(pass_id, handler, retries=1, timeout_s=6 * 3600))


def plan_from_config(config: Config) -> JanitorPlan:
    """The janitor's plan from the (already validated) configuration."""
    return JanitorPlan(
        schedules={
            PURGE_CACHE: config.schedule_purge_cache,
            PURGE_SYNC_LOG: config.schedule_purge_sync_log,
            ARCHIVE_AUDIT: config.schedule_archive_audit,
            PRUNE_ENGINE: config.schedule_prune_engine,
            PRUNE_OAUTH: config.schedule_prune_oauth,
        },
        retention=Retention(
            cache_s=config.retention_cache,
            cache_grace_s=config.retention_cache_grace,
            sync_log_s=config.retention_sync_log,
            audit_s=config.retention_audit,
            succeeded_runs_s=config.retention_runs_succeeded,
            failed_runs_s=config.retention_runs_failed,
            events_s=config.retention_events,
            cron_ticks_s=config.retention_cron_ticks,
            oauth_s=config.retention_oauth,
            webhook_deliveries_s=config.retention_webhook_deliveries,
            batch=config.janitor_batch,
        ),
    )
