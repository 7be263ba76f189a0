"""The `refresh-tenant-report` worker (seed 000 §B2-§C): fetch one report for one
tenant's account, analyse it, store it in the cache, and log every attempt.

- Each attempt writes a `sync_log` row: success, failure_retry or failure_final, with
  its duration and error code.
- `token_revoked` (and `invalid_request`, `not_found`, and `credential_unreadable`: a
  stored credential that does not decrypt) are not retried; `rate_limited` retries no
  sooner than the platform's retry-after. A request for an unknown platform, report
  type or date range fails at once, logged with `invalid_request`.
- When the last attempt fails, the credential is marked unhealthy (error code, time),
  its cached reports are marked stale and a `sync.exhausted` audit event is written;
  the eager refresh tries that report again `RETRY_EXHAUSTED_S` later. The next
  success clears all of it (the failure time too) and un-stales the account's rows.
- sync_log rows are stamped on the daemon's clock.
- Runs share a concurrency key per (tenant, platform), so one tenant's platform limits
  are respected and one tenant's failures never hold up another's syncs; requests for a
  report with a refresh already queued join it (at most one queued refresh per report).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import attrs

from deneva.adapters import PlatformError, ReportRequest
from deneva.backoff import Backoff
from deneva.clock import as_datetime
from deneva.credentials import CredentialError
from deneva.db import Connection
from deneva.engine.context import Context
from deneva.engine.errors import NonRetriableError, RetryAfterError
from deneva.engine.functions import Coalesce, Concurrency, EventTrigger, Function, Registry
from deneva.reports.inputs import ReportInputError
from deneva.sql import query
from deneva.sync.analyse import analyse
from deneva.sync.cache import WRITE_SQL, mark_stale, write_args
from deneva.sync.credentials import StoredTokens, load_credentials
from deneva.sync.model import (
    REFRESH_EVENT,
    InvalidRefresh,
    RefreshTarget,
    SyncRuntime,
    SyncServices,
    not_synced,
)
from deneva.sync.reconnect import log_reconnect_needed

__all__ = ["REFRESH_EVENT", "FetchedReport", "fetch_report", "register_worker"]

# credential_unreadable: the stored credential does not decrypt (corrupted, or another DENEVA_KEK).
NOT_RETRIED = ("token_revoked", "invalid_request", "not_found", "credential_unreadable")
# After a final failure, the eager refresh tries that report again this much later.
RETRY_EXHAUSTED_S = 600.0
_LOG = query("sync_log_insert")
_MARK_HEALTHY = query("sync_mark_healthy")
_UNSTALE = query("sync_unstale_account")
_MARK_UNHEALTHY = query("sync_mark_unhealthy")
_POSTPONE = query("sync_postpone_refresh")
_AUDIT_EXHAUSTED = query("sync_audit_exhausted")
_TENANT_NAME = query("sync_tenant_name")
_TENANT_EXISTS = query("sync_tenant_exists")


@attrs.frozen
class FetchedReport:
    """One report fetched from its platform and analysed, not yet stored."""

    payload: dict[str, Any]
    rows: int
    api_calls: int


async def fetch_report(services: SyncServices, target: RefreshTarget) -> FetchedReport:
    """Fetch one report and analyse it: the daemon's one path to a platform's reports (the
    MCP tools' misses join this worker's runs).

    Raises PlatformError (typed code) when the platform fails. A token the adapter must
    refresh on the way is refreshed through `refresh_credential` (serialised with every
    other refresh of the credential, stored compare-and-set).
    """
    db = services.db
    adapter = services.adapters.get(target.platform)
    if adapter is None:
        raise not_synced(target.platform)
    account = target.account

    def load(conn: Connection) -> Any:
        return load_credentials(conn, services.keys, account)

    loaded = await db.transaction(load)
    today = services.today()
    request = ReportRequest(target.platform, target.account_id, target.report_type, target.date_range, today)
    tokens = StoredTokens(services, account)
    try:
        data = await adapter.fetch_report(loaded.creds, request, tokens)
    except PlatformError as error:
        services.metrics.platform_calls(target.platform, error.api_calls)
        services.metrics.platform_error(target.platform, error.code)
        raise
    services.metrics.platform_calls(target.platform, data.api_calls)
    payload = analyse(target.report_type, data.rows, today, target.date_range, currency=data.currency)
    return FetchedReport(payload, len(data.rows), data.api_calls)


async def _record_success(
    conn: Connection, target: RefreshTarget, run_id: uuid.UUID, attempt: int, ms: int, now: float
) -> None:
    at = as_datetime(now)
    await conn.execute(_LOG, *attrs.astuple(target), str(run_id), attempt, "success", ms, None, None, at)
    account = (target.tenant_id, target.platform, target.account_id)
    await conn.execute(_MARK_HEALTHY, *account, at)
    await conn.execute(_UNSTALE, *account)


def _failure(error: Exception) -> tuple[str, str]:
    """The error code and message sync_log records for a failed fetch."""
    if isinstance(error, PlatformError):
        return error.code, error.message
    if isinstance(error, CredentialError):
        return "credential_unreadable", str(error)
    return "internal", f"{type(error).__name__}: {error}"


async def _record_invalid(
    conn: Connection, bad: InvalidRefresh, run_id: uuid.UUID, attempt: int, now: float
) -> None:
    """A request the worker cannot serve is logged (for a known tenant); no account is at fault."""
    if await conn.fetchval(_TENANT_EXISTS, bad.target.tenant_id):
        row = (str(run_id), attempt, "failure_final", 0, bad.error.code, bad.error.message[:500])
        await conn.execute(_LOG, *attrs.astuple(bad.target), *row, as_datetime(now))


async def _record_failure(
    conn: Connection,
    target: RefreshTarget,
    run_id: uuid.UUID,
    attempt: int,
    ms: int,
    error: Exception,
    final: bool,
    now: float,
) -> None:
    outcome = "failure_final" if final else "failure_retry"
    code, message = _failure(error)
    row = (str(run_id), attempt, outcome, ms, code, message[:500], as_datetime(now))
    await conn.execute(_LOG, *attrs.astuple(target), *row)
    if not final:
        return
    await conn.execute(
        _MARK_UNHEALTHY, target.tenant_id, target.platform, target.account_id, as_datetime(now), code
    )
    if code == "token_revoked":
        tenant = await conn.fetchval(_TENANT_NAME, target.tenant_id)
        log_reconnect_needed(target.platform, tenant, target.account_id, message)
    stale = await mark_stale(conn, target.tenant_id, target.platform, target.account_id)
    # A new due time: the eager refresh tries this report again later.
    await conn.execute(_POSTPONE, *attrs.astuple(target), as_datetime(now + RETRY_EXHAUSTED_S))
    await conn.execute(
        _AUDIT_EXHAUSTED,
        target.tenant_id,
        {
            "platform": target.platform,
            "account_id": target.account_id,
            "report_type": target.report_type,
            "date_range": target.date_range,
            "error_code": code,
            "attempts": attempt,
            "stale_rows": stale,
        },
    )


def register_worker(
    registry: Registry, services: SyncServices | SyncRuntime, backoff: Backoff | None = None
) -> Function:
    """`refresh-tenant-report`: one report of one tenant's account, retried, logged."""
    runtime = services if isinstance(services, SyncRuntime) else SyncRuntime(services)

    async def refresh_tenant_report(ctx: Context) -> dict[str, Any]:
        services = runtime.get()
        db, clock = services.db, services.clock
        try:
            target = RefreshTarget.from_event(ctx.data)
            if target.platform not in services.adapters:
                raise InvalidRefresh(target, not_synced(target.platform))
        except InvalidRefresh as exc:
            invalid, now = exc, clock.now()
            await db.transaction(lambda conn: _record_invalid(conn, invalid, ctx.run_id, ctx.attempt, now))
            raise
        ttl_s = target.ttl_s
        started = time.perf_counter()

        async def fetch_and_store() -> dict[str, Any]:
            report = await fetch_report(services, target)
            fetched_at = clock.now()

            async def store(conn: Connection) -> None:
                ms = int((time.perf_counter() - started) * 1000)
                # The credential row first, then cache rows: the lock order of every sync write.
                await _record_success(conn, target, ctx.run_id, ctx.attempt, ms, fetched_at)
                await conn.execute(WRITE_SQL, *write_args(target.key, report.payload, fetched_at, ttl_s))

            await db.transaction(store)
            return {"rows": report.rows, "apiCalls": report.api_calls, "fetchedAt": fetched_at}

        try:
            result: dict[str, Any] = await ctx.step.run("fetch-and-store", fetch_and_store)
            return result
        except (PlatformError, CredentialError, ReportInputError) as error:
            code, message = _failure(error)
            final = ctx.last_attempt or code in NOT_RETRIED
            ms = int((time.perf_counter() - started) * 1000)
            now = clock.now()
            failure = error
            await db.transaction(
                lambda conn: _record_failure(conn, target, ctx.run_id, ctx.attempt, ms, failure, final, now)
            )
            if code in NOT_RETRIED:
                raise NonRetriableError(f"{code}: {message}") from None
            if isinstance(error, PlatformError) and error.code == "rate_limited" and error.retry_after_s:
                raise RetryAfterError(f"rate_limited: {error.message}", error.retry_after_s) from None
            raise

    function = Function(
        "refresh-tenant-report",
        refresh_tenant_report,
        (EventTrigger(REFRESH_EVENT),),
        retries=3,
        backoff=backoff or Backoff(base_s=30, factor=2, max_s=900),
        timeout_s=300,
        concurrency=Concurrency(2, key="data.tenant_id, data.platform"),
        # Requests for a report already queued join that run (a client calling refresh_report
        # in a loop, a fan-out meeting a user's request): one queued refresh per report.
        coalesce=Coalesce(
            "data.tenant_id, data.platform, data.account_id, data.report_type, data.date_range"
        ),
    )
    registry.add(function)
    return function
