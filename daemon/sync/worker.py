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
  are respected and one tenant's failures never hold up another's syncs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

import attrs

from deneva.adapters import Credentials, PlatformError, ReportRequest
from deneva.adapters.base import Platform
from deneva.adapters.registry import check_report
from deneva.clock import Clock, as_datetime
from deneva.credentials import CredentialError, PlainTokens, SealedCredential, open_tokens, store_tokens
from deneva.db import Connection, Database
from deneva.engine.context import Context
from deneva.engine.errors import NonRetriableError, RetryAfterError
from deneva.engine.functions import Backoff, Concurrency, EventTrigger, Function, Registry
from deneva.reports.inputs import ReportInputError
from deneva.sync.analyse import analyse
from deneva.sync.cache import WRITE_SQL, CacheKey, mark_stale, write_args
from deneva.sync.cadence import cadence_for

REFRESH_EVENT = "sync/report.refresh-requested"
# credential_unreadable: the stored credential does not decrypt (corrupted, or another DENEVA_KEK).
NOT_RETRIED = ("token_revoked", "invalid_request", "not_found", "credential_unreadable")
# After a final failure, the eager refresh tries that report again this much later.
RETRY_EXHAUSTED_S = 600.0


@attrs.frozen
class SyncServices:
    db: Database
    kek: bytes
    adapters: dict[str, Platform]
    clock: Clock
    today: Callable[[], date] = date.today


class InvalidRefresh(NonRetriableError):
    """A refresh request for an unknown platform, report type or date range."""

    def __init__(self, target: RefreshTarget, error: PlatformError) -> None:
        super().__init__(error.message)
        self.target = target
        self.error = error


@attrs.frozen
class RefreshTarget:
    tenant_id: uuid.UUID
    platform: str
    account_id: str
    report_type: str
    date_range: str

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> RefreshTarget:
        try:
            target = cls(
                uuid.UUID(str(data["tenant_id"])),
                str(data["platform"]),
                str(data["account_id"]),
                str(data["report_type"]),
                str(data["date_range"]),
            )
        except (KeyError, ValueError) as exc:
            raise NonRetriableError(f"refresh request: missing or bad field {exc}") from None
        try:
            check_report(target.platform, target.report_type, target.date_range)
        except PlatformError as exc:
            raise InvalidRefresh(target, exc) from None
        return target

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.tenant_id, self.platform, self.account_id, self.report_type, self.date_range)

    @property
    def ttl_s(self) -> float:
        """How long the report stays fresh (its cadence's TTL; an hour off the cadence)."""
        cadence = cadence_for(self.platform, self.report_type)
        return cadence.ttl_s if cadence else 3600.0


async def _load_credentials(conn: Connection, kek: bytes, target: RefreshTarget) -> Credentials:
    row = await conn.fetchrow(
        "SELECT wrapped_key, refresh_token_ct, access_token_ct, access_token_expires_at "
        "FROM platform_credentials WHERE tenant_id = $1 AND platform = $2 AND account_id = $3",
        target.tenant_id,
        target.platform,
        target.account_id,
    )
    if row is None:
        raise NonRetriableError(f"no {target.platform} credential for account {target.account_id}")
    expires = row["access_token_expires_at"]
    sealed = SealedCredential.from_row(row)
    tokens = open_tokens(kek, target.tenant_id, target.platform, target.account_id, sealed)
    return Credentials(
        target.platform,
        target.account_id,
        refresh_token=tokens.refresh_token,
        access_token=tokens.access_token,
        access_token_expires_at=None if expires is None else expires.timestamp(),
    )


@attrs.frozen
class FetchedReport:
    """One report fetched from its platform and analysed, not yet stored."""

    payload: dict[str, Any]
    rows: int
    api_calls: int


def not_synced(platform: str) -> PlatformError:
    """A platform this daemon has no adapter for (see deneva.sync.platforms)."""
    return PlatformError(
        "invalid_request",
        platform,
        f"{platform} is not synced by this daemon (see the `platforms` setting and its secret files)",
    )


async def fetch_report(
    services: SyncServices, target: RefreshTarget, *, as_tenant: bool = False
) -> FetchedReport:
    """Fetch one report and analyse it: the worker's fetch, also a tool's cache miss.

    Raises PlatformError (typed code) when the platform fails. With `as_tenant`, the
    credential is read in the tenant's own transaction (row-level security), as tools
    do; an access token the adapter had to obtain is then not stored, because the
    tenant role may not update credentials (the eager token refresh keeps them fresh).
    """
    db = services.db
    adapter = services.adapters.get(target.platform)
    if adapter is None:
        raise not_synced(target.platform)

    def load(conn: Connection) -> Awaitable[Credentials]:
        return _load_credentials(conn, services.kek, target)

    creds = await (db.tenant_transaction(str(target.tenant_id), load) if as_tenant else db.transaction(load))
    today = services.today()
    request = ReportRequest(target.platform, target.account_id, target.report_type, target.date_range, today)
    data = await adapter.fetch_report(creds, request)
    if data.refreshed is not None and not as_tenant:  # keep the access token the adapter had to fetch
        grant = data.refreshed
        tokens = PlainTokens(grant.refresh_token or creds.refresh_token, grant.access_token, grant.expires_at)
        await db.run(
            lambda conn: store_tokens(
                conn, services.kek, target.tenant_id, target.platform, target.account_id, tokens
            )
        )
    payload = analyse(target.report_type, data.rows, today, target.date_range)
    return FetchedReport(payload, len(data.rows), data.api_calls)


_LOG = """
INSERT INTO sync_log (tenant_id, platform, account_id, report_type, date_range, run_id, attempt,
                      outcome, duration_ms, error_code, error_message, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""


async def _record_success(
    conn: Connection, target: RefreshTarget, run_id: uuid.UUID, attempt: int, ms: int, now: float
) -> None:
    at = as_datetime(now)
    await conn.execute(_LOG, *attrs.astuple(target), str(run_id), attempt, "success", ms, None, None, at)
    account = (target.tenant_id, target.platform, target.account_id)
    await conn.execute(
        "UPDATE platform_credentials SET healthy = true, last_error_code = NULL, "
        "last_sync_failure_at = NULL, last_success_at = $4, updated_at = $4 "
        "WHERE tenant_id = $1 AND platform = $2 AND account_id = $3",
        *account,
        at,
    )
    await conn.execute(
        "UPDATE metric_cache SET is_stale = false "
        "WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 AND is_stale",
        *account,
    )


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
    if await conn.fetchval("SELECT 1 FROM tenants WHERE id = $1", bad.target.tenant_id):
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
        "UPDATE platform_credentials SET healthy = false, last_sync_failure_at = $4, last_error_code = $5, "
        "updated_at = $4 WHERE tenant_id = $1 AND platform = $2 AND account_id = $3",
        target.tenant_id,
        target.platform,
        target.account_id,
        as_datetime(now),
        code,
    )
    stale = await mark_stale(conn, target.tenant_id, target.platform, target.account_id)
    await conn.execute(  # a new due time: the eager refresh tries this report again later
        "UPDATE metric_cache SET refresh_at = $6 WHERE tenant_id = $1 AND platform = $2 AND account_id = $3 "
        "AND report_type = $4 AND date_range = $5",
        *attrs.astuple(target),
        as_datetime(now + RETRY_EXHAUSTED_S),
    )
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, event_type, outcome, actor, details) "
        "VALUES ($1, 'sync.exhausted', 'failure', 'refresh-tenant-report', $2)",
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


class SyncRuntime:
    """What the sync functions need at run time, bound once the daemon has it (the
    functions are registered before: `deneva functions` lists them either way)."""

    def __init__(self, services: SyncServices | None = None) -> None:
        self.services = services

    def get(self) -> SyncServices:
        if self.services is None:
            raise NonRetriableError("ad-platform sync is not configured in this process")
        return self.services


def register_sync(
    registry: Registry, services: SyncServices | SyncRuntime, backoff: Backoff | None = None
) -> Function:
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
    )
    registry.add(function)
    from deneva.sync.schedule import register_schedules

    register_schedules(registry, lambda: runtime.get().db, lambda: tuple(runtime.get().adapters))
    from deneva.sync.tokens import register_token_refresh

    register_token_refresh(registry, runtime.get)
    return function
