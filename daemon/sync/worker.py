"""The `refresh-tenant-report` worker (seed 000 §B2-§C): fetch one report for one
tenant's account, analyse it, store it in the cache, and log every attempt.

- Each attempt writes a `sync_log` row: success, failure_retry or failure_final, with
  its duration and error code.
- `token_revoked` (and `invalid_request`, `not_found`) are not retried; `rate_limited`
  retries no sooner than the platform's retry-after.
- When the last attempt fails, the credential is marked unhealthy (error code, time),
  its cached reports are marked stale and a `sync.exhausted` audit event is written;
  the next success clears all of it.
- Runs share a concurrency key per (tenant, platform), so one tenant's platform limits
  are respected and one tenant's failures never hold up another's syncs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

import attrs

from deneva.adapters import Credentials, PlatformError, ReportRequest
from deneva.adapters.base import Platform
from deneva.adapters.registry import check_report
from deneva.clock import Clock, as_datetime
from deneva.credentials import PlainTokens, SealedCredential, open_tokens, store_tokens
from deneva.db import Connection, Database
from deneva.engine.context import Context
from deneva.engine.errors import NonRetriableError, RetryAfterError
from deneva.engine.functions import Backoff, Concurrency, EventTrigger, Function, Registry
from deneva.sync.analyse import analyse
from deneva.sync.cache import WRITE_SQL, CacheKey, mark_stale, write_args
from deneva.sync.cadence import cadence_for

REFRESH_EVENT = "sync/report.refresh-requested"
NOT_RETRIED = ("token_revoked", "invalid_request", "not_found")


@attrs.frozen
class SyncServices:
    db: Database
    kek: bytes
    adapters: dict[str, Platform]
    clock: Clock
    today: Callable[[], date] = date.today


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
            raise NonRetriableError(exc.message) from None
        return target

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.tenant_id, self.platform, self.account_id, self.report_type, self.date_range)


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


_LOG = """
INSERT INTO sync_log (tenant_id, platform, account_id, report_type, date_range, run_id, attempt,
                      outcome, duration_ms, error_code, error_message)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
"""


async def _record_success(
    conn: Connection, target: RefreshTarget, run_id: uuid.UUID, attempt: int, ms: int, now: float
) -> None:
    await conn.execute(_LOG, *attrs.astuple(target), str(run_id), attempt, "success", ms, None, None)
    await conn.execute(
        "UPDATE platform_credentials SET healthy = true, last_error_code = NULL, last_success_at = $4, "
        "updated_at = $4 WHERE tenant_id = $1 AND platform = $2 AND account_id = $3",
        target.tenant_id,
        target.platform,
        target.account_id,
        as_datetime(now),
    )


async def _record_failure(
    conn: Connection,
    target: RefreshTarget,
    run_id: uuid.UUID,
    attempt: int,
    ms: int,
    error: PlatformError,
    final: bool,
    now: float,
) -> None:
    outcome = "failure_final" if final else "failure_retry"
    await conn.execute(
        _LOG, *attrs.astuple(target), str(run_id), attempt, outcome, ms, error.code, error.message[:500]
    )
    if not final:
        return
    await conn.execute(
        "UPDATE platform_credentials SET healthy = false, last_sync_failure_at = $4, last_error_code = $5, "
        "updated_at = $4 WHERE tenant_id = $1 AND platform = $2 AND account_id = $3",
        target.tenant_id,
        target.platform,
        target.account_id,
        as_datetime(now),
        error.code,
    )
    stale = await mark_stale(conn, target.tenant_id, target.platform, target.account_id)
    await conn.execute(
        "INSERT INTO audit_log (tenant_id, event_type, outcome, actor, details) "
        "VALUES ($1, 'sync.exhausted', 'failure', 'refresh-tenant-report', $2)",
        target.tenant_id,
        {
            "platform": target.platform,
            "account_id": target.account_id,
            "report_type": target.report_type,
            "date_range": target.date_range,
            "error_code": error.code,
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
        target = RefreshTarget.from_event(ctx.data)
        cadence = cadence_for(target.platform, target.report_type)
        ttl_s = cadence.ttl_s if cadence else 3600.0
        started = time.perf_counter()

        async def fetch_and_store() -> dict[str, Any]:
            creds = await db.transaction(lambda conn: _load_credentials(conn, services.kek, target))
            today = services.today()
            request = ReportRequest(
                target.platform, target.account_id, target.report_type, target.date_range, today
            )
            data = await services.adapters[target.platform].fetch_report(creds, request)
            if data.refreshed is not None:  # keep the access token the adapter had to fetch
                grant = data.refreshed
                tokens = PlainTokens(
                    grant.refresh_token or creds.refresh_token, grant.access_token, grant.expires_at
                )
                await db.run(
                    lambda conn: store_tokens(
                        conn, services.kek, target.tenant_id, target.platform, target.account_id, tokens
                    )
                )
            payload = analyse(target.report_type, data.rows, today, target.date_range)
            fetched_at = clock.now()

            async def store(conn: Connection) -> None:
                await conn.execute(WRITE_SQL, *write_args(target.key, payload, fetched_at, ttl_s))
                ms = int((time.perf_counter() - started) * 1000)
                await _record_success(conn, target, ctx.run_id, ctx.attempt, ms, fetched_at)

            await db.transaction(store)
            return {"rows": len(data.rows), "apiCalls": data.api_calls, "fetchedAt": fetched_at}

        try:
            result: dict[str, Any] = await ctx.step.run("fetch-and-store", fetch_and_store)
            return result
        except PlatformError as error:
            final = ctx.last_attempt or error.code in NOT_RETRIED
            ms = int((time.perf_counter() - started) * 1000)
            now = clock.now()
            failure = error
            await db.transaction(
                lambda conn: _record_failure(conn, target, ctx.run_id, ctx.attempt, ms, failure, final, now)
            )
            if error.code in NOT_RETRIED:
                raise NonRetriableError(f"{error.code}: {error.message}") from None
            if error.code == "rate_limited" and error.retry_after_s:
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

    register_schedules(registry, lambda: runtime.get().db)
    from deneva.sync.tokens import register_token_refresh

    register_token_refresh(registry, runtime.get)
    return function
