"""The MCP tools of SPEC §9: cached ad reports, on-demand refresh, sync status.

Wiring (the transport's side), once the pool, the engine and the sync services exist:

    from deneva.mcp.report_tools import ToolServices, build_tools

    tools = build_tools(
        ToolServices(db=db, engine=lambda: engine, clock=clock, sync=sync_runtime.get, owner=owner)
    )
    server = McpServer(tools, sessions)

`engine` and `sync` may be the objects themselves or functions returning them (read at
call time, so they may be bound after the tools are built). `sync` may be None: cache
hits are still served, a miss is then a tool error. `owner` names this process in the
cache's fetch claims (the engine's owner is fine).

Tools, each with an inputSchema and an outputSchema:

- `get_account_health`, `get_search_term_waste`, `get_auction_insights`,
  `get_quality_score`, `get_pmax_breakdown`, `get_budget_optimizer`, `get_weekly_anomaly`
  (`platform`, `dateRange`, optional `accountId`): the cached analysis as
  `{data, cache: "hit"|"miss", fetchedAt, stale?, lastFailureCode?}`. Without
  `accountId`, the tenant's only account on the platform. A hit is one database
  crossing (account resolution and the cache row in one tenant transaction); a miss
  joins (or enqueues) the key's `refresh-tenant-report` run and waits for it, up to
  `fetch_wait_s`, once across processes (`deneva.sync.cache.read_or_refresh`): every
  platform call goes through the worker (sync_log, retries, the per-(tenant, platform)
  concurrency key, stored token refreshes). A run that fails answers its typed code; one
  still running at the time limit answers `transient` with its run id.
- `refresh_report` (`platform`, `reportType`, `dateRange`, optional `accountId`, `wait`,
  `timeoutS`): sends the refresh event and returns `{runId, status: "queued"}`; with
  `wait`, the final status (`completed` with `fetchedAt`, `failed` with `errorCode` and
  `error`) or `timed_out_waiting` while the run carries on. While waiting it reports
  progress about once a second through `ToolContext.progress`, when the transport set it.
- `get_sync_status` (optional `platform`): per connected account its health and cached
  reports, the sync failures of the last 24 hours, and `apiVersions`: per platform this
  daemon syncs its API version and how it stands against its published sunset date
  (`deneva.sync.versions`).

Every read and write runs in `Database.tenant_transaction(ctx.tenant_id, ...)`, so
row-level security scopes it to the caller's tenant whatever the arguments say.
"""

from __future__ import annotations

import collections
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import trio

from deneva.accounts import account_id_problem
from deneva.catalog import DATE_RANGES, PLATFORMS, REPORT_SCHEMAS, report_problem
from deneva.clock import Clock
from deneva.db import Connection, Database
from deneva.engine.engine import Engine
from deneva.engine.errors import NonRetriableError
from deneva.engine.model import RunRecord
from deneva.mcp.jsonrpc import JsonObject, RawJson
from deneva.mcp.report_reads import ReportReads
from deneva.mcp.tools import ProgressFn, Tool, ToolContext, ToolError, ToolRegistry
from deneva.sql import query
from deneva.sync.cache import CacheResult, CacheWaitTimeout, hit_from_row, read_or_refresh
from deneva.sync.model import REFRESH_EVENT, RefreshTarget, SyncServices
from deneva.sync.portfolio import read_portfolio
from deneva.sync.reconnect import Reconnect, health_status, reconnect_needed
from deneva.sync.versions import api_versions

log = logging.getLogger(__name__)

REPORT_TOOLS: dict[str, str] = {
    "get_account_health": "account_health",
    "get_search_term_waste": "search_term_waste",
    "get_auction_insights": "auction_insights",
    "get_quality_score": "quality_score",
    "get_pmax_breakdown": "pmax_breakdown",
    "get_budget_optimizer": "budget_optimizer",
    "get_weekly_anomaly": "weekly_anomaly",
}
_DESCRIPTIONS = {
    "account_health": "Account health: period totals against the previous period, week-over-week deltas, "
    "top movers and flags.",
    "search_term_waste": "Search-term waste: terms that spent and never converted, ranked, with suggested "
    "negatives (Google only).",
    "auction_insights": "Auction insights: who you compete with, who outranks you, your share against the "
    "leader (Google only).",
    "quality_score": "Quality-score distribution over keywords, impressions and spend, and the costly low "
    "scorers (Google only).",
    "pmax_breakdown": "Performance Max: spend and results per asset group, the best, the worst, the "
    "non-converting (Google only).",
    "budget_optimizer": "Budget optimizer: budget-limited campaigns with a good CPA, and budget to move to "
    "them from others.",
    "weekly_anomaly": "Weekly anomaly: the last 7 days' metrics that fall outside the band of the weeks "
    "before.",
}
_TITLES = {
    "account_health": "Account health",
    "search_term_waste": "Search-term waste",
    "auction_insights": "Auction insights",
    "quality_score": "Quality-score distribution",
    "pmax_breakdown": "Performance Max breakdown",
    "budget_optimizer": "Budget optimizer",
    "weekly_anomaly": "Weekly anomaly",
}
FINISHED = ("succeeded", "failed", "cancelled")
PROGRESS_EVERY_S = 1.0
MAX_ACCOUNTS = 50  # listed in an ambiguity error, and per platform in get_sync_status
MAX_CACHED_REPORTS = 1000
MAX_FAILURES = 50
RECENT_FAILURES_S = 24 * 3600.0
_TYPED_ERROR = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)
_HINTS = {
    "token_revoked": "The platform no longer accepts this account's credential: reconnect it.",
    "rate_limited": "The platform asked us to slow down: try again later.",
    "transient": "The platform is unavailable for now: try again shortly.",
    "not_found": "The account does not exist or its credential cannot see it.",
    "invalid_request": "The platform refused the request.",
    "internal": "The platform answered something deneva could not read.",
}


class TenantRateLimit:
    """At most `limit` calls per tenant in any `period_s`, in this process (an abuse guard:
    a tenant looping on refresh_report cannot load the database for everyone)."""

    def __init__(self, clock: Clock, limit: int = 60, period_s: float = 60.0) -> None:
        self.clock = clock
        self.limit = limit
        self.period_s = period_s
        self._calls: dict[str, collections.deque[float]] = {}

    def retry_in_s(self, tenant: str) -> float | None:
        """Count a call; None if allowed, else how long until one would be."""
        now = self.clock.now()
        waited = self.blocked_for(tenant)
        if waited is not None:
            return waited
        self._calls.setdefault(tenant, collections.deque()).append(now)
        if len(self._calls) > 10_000:  # forget tenants that called long ago
            self._calls = {t: c for t, c in self._calls.items() if c and c[-1] > now - self.period_s}
        return None

    def blocked_for(self, tenant: str) -> float | None:
        """Without counting a call: None if one would be allowed now, else how long until it
        would be (the console's sign-in counts only failures, and checks before each try)."""
        now = self.clock.now()
        calls = self._calls.get(tenant)
        if calls is None:
            return None
        while calls and calls[0] <= now - self.period_s:
            calls.popleft()
        if len(calls) >= self.limit:
            return calls[0] + self.period_s - now
        return None


@attrs.frozen
class ToolServices:
    """What the tools need; `engine` and `sync` may be functions returning them."""

    db: Database
    engine: Engine | Callable[[], Engine]
    clock: Clock
    sync: SyncServices | Callable[[], SyncServices] | None
    owner: str
    fetch_wait_s: float = 60.0  # how long a miss waits for its refresh run (or another caller's)
    # Counts each report read: (tool, "hit" | "stale" | "miss") (the daemon's Metrics.cache_read).
    on_cache_read: Callable[[str, str], None] = lambda tool, result: None
    refresh_limit: TenantRateLimit = attrs.field(
        default=attrs.Factory(lambda self: TenantRateLimit(self.clock), takes_self=True)
    )
    # The tools' cache reads, batched across concurrent calls.
    reads: ReportReads = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: ReportReads(self.db, MAX_ACCOUNTS + 1), takes_self=True),
    )

    def get_engine(self) -> Engine:
        return self.engine if isinstance(self.engine, Engine) else self.engine()

    def sync_or_none(self) -> SyncServices | None:
        """The sync services, None when this daemon has none (yet)."""
        try:
            return None if self.sync is None else self.get_sync()
        except ToolError:
            return None

    def get_sync(self) -> SyncServices:
        if self.sync is None:
            raise ToolError("Reports cannot be fetched: ad-platform sync is not configured in this daemon.")
        if isinstance(self.sync, SyncServices):
            return self.sync
        try:
            return self.sync()
        except NonRetriableError as exc:  # SyncRuntime.get before the services are bound
            raise ToolError(f"Reports cannot be fetched: {exc}") from None


# -- schemas ------------------------------------------------------------------------------

_PLATFORM: JsonObject = {
    "type": "string",
    "enum": list(PLATFORMS),
    "description": "Ad platform: google, meta or tiktok.",
}
_DATE_RANGE: JsonObject = {
    "type": "string",
    "enum": list(DATE_RANGES),
    "description": "Whole days ending yesterday.",
}
# Account ids (deneva.accounts): the schema takes any platform's; the tools then check the
# one of the platform asked for. Nothing else gets near the database.
_ACCOUNT: JsonObject = {
    "type": "string",
    "minLength": 1,
    "maxLength": 24,
    "pattern": r"^(act_)?[0-9]{1,20}$|^[0-9]{3}-[0-9]{3}-[0-9]{4}$",
    "description": "Account id on the platform (Google: customer id, digits, dashes allowed; Meta: ad "
    "account id, digits, act_ optional; TikTok: advertiser id, digits); optional when the tenant has "
    "one account there.",
}
_TIMESTAMP: JsonObject = {"type": "string", "format": "date-time"}
_NULLABLE_TIMESTAMP: JsonObject = {"type": ["string", "null"], "format": "date-time"}
_NULLABLE_STRING: JsonObject = {"type": ["string", "null"]}

REPORT_INPUT: JsonObject = {
    "type": "object",
    "properties": {"platform": _PLATFORM, "dateRange": _DATE_RANGE, "accountId": _ACCOUNT},
    "required": ["platform", "dateRange"],
    "additionalProperties": False,
}
REPORT_OUTPUT: JsonObject = {
    "type": "object",
    "properties": {
        "data": {"type": "object", "description": "The analysis."},
        "cache": {"type": "string", "enum": ["hit", "miss"]},
        "fetchedAt": _TIMESTAMP,
        "stale": {"type": "boolean", "description": "Past its TTL or its last sync failed; refresh pending."},
        "lastFailureCode": {
            "type": "string",
            "description": "Why the account's last sync failed (token_revoked, rate_limited, ...).",
        },
    },
    "required": ["data", "cache", "fetchedAt"],
}
PORTFOLIO_INPUT: JsonObject = {
    "type": "object",
    "properties": {"dateRange": _DATE_RANGE},
    "required": ["dateRange"],
    "additionalProperties": False,
}
_MONEY_FIGURES: JsonObject = {
    "spend": {"type": "number"},
    "conversions": {"type": "number"},
    "conversion_value": {"type": "number"},
    "cpa": {"type": ["number", "null"]},
    "roas": {"type": ["number", "null"]},
}
_CHANGE: JsonObject = {
    "type": "object",
    "description": "Percent change against the previous period; null where it cannot be made.",
    "properties": {k: {"type": ["number", "null"]} for k in ("spend", "conversions", "cpa", "roas")},
}
_CURRENCY_TOTALS: JsonObject = {
    "type": "array",
    "description": "One entry per currency: amounts are never summed across currencies.",
    "items": {
        "type": "object",
        "properties": {
            "currency": {"type": "string"},
            "accounts": {"type": "integer"},
            **_MONEY_FIGURES,
            "previous": {"type": ["object", "null"]},
            "change_pct": _CHANGE,
            "accounts_without_previous_period": {"type": "integer"},
        },
        "required": ["currency", "accounts", "spend", "conversions", "cpa", "roas", "change_pct"],
    },
}
PORTFOLIO_OUTPUT: JsonObject = {
    "type": "object",
    "properties": {
        "data": {
            "type": "object",
            "properties": {
                "report": {"type": "string", "enum": ["portfolio_overview"]},
                "has_data": {"type": "boolean"},
                "summary": {"type": "string"},
                "date_range": {"type": "string"},
                "accounts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "platform": {"type": "string"},
                            "account_id": {"type": "string"},
                            "status": {"type": "string", "enum": ["cached", "pending"]},
                            "healthy": {"type": "boolean"},
                            "last_error_code": _NULLABLE_STRING,
                            "currency": _NULLABLE_STRING,
                            "fetched_at": _NULLABLE_TIMESTAMP,
                            "expires_at": _NULLABLE_TIMESTAMP,
                            "stale": {"type": "boolean"},
                            **_MONEY_FIGURES,
                            "previous_period_coverage": {
                                "type": "string",
                                "enum": ["complete", "partial", "none"],
                            },
                            "change_pct": _CHANGE,
                        },
                        "required": ["platform", "account_id", "status", "healthy", "stale"],
                    },
                },
                "by_platform": {"type": "object", "additionalProperties": _CURRENCY_TOTALS},
                "blended": _CURRENCY_TOTALS,
                "pending_accounts": {"type": "integer"},
                "truncated": {"type": "boolean"},
            },
            "required": ["report", "summary", "accounts", "by_platform", "blended", "pending_accounts"],
        },
        "cache": {"type": "string", "enum": ["hit", "miss"], "description": "miss: some account pending."},
        "fetchedAt": {**_TIMESTAMP, "description": "The least fresh account's fetch."},
        "stale": {"type": "boolean", "description": "Some account's numbers are past their TTL."},
    },
    "required": ["data", "cache", "fetchedAt"],
}
REFRESH_INPUT: JsonObject = {
    "type": "object",
    "properties": {
        "platform": _PLATFORM,
        "reportType": {"type": "string", "enum": list(REPORT_SCHEMAS)},
        "dateRange": _DATE_RANGE,
        "accountId": _ACCOUNT,
        "wait": {
            "type": "boolean",
            "default": False,
            "description": "Wait for the refresh to finish (default: return at once with the run id).",
        },
        "timeoutS": {
            "type": "integer",
            "minimum": 1,
            "maximum": 300,
            "default": 30,
            "description": "With wait: how long to wait before answering timed_out_waiting.",
        },
    },
    "required": ["platform", "reportType", "dateRange"],
    "additionalProperties": False,
}
REFRESH_OUTPUT: JsonObject = {
    "type": "object",
    "properties": {
        "runId": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["queued", "completed", "failed", "cancelled", "timed_out_waiting"],
        },
        "fetchedAt": _TIMESTAMP,
        "errorCode": {"type": "string"},
        "error": {"type": "string"},
        "runStatus": {"type": "string", "description": "With timed_out_waiting: where the run is now."},
        "attempt": {"type": "integer"},
    },
    "required": ["runId", "status"],
}
STATUS_INPUT: JsonObject = {
    "type": "object",
    "properties": {"platform": _PLATFORM},
    "additionalProperties": False,
}
STATUS_OUTPUT: JsonObject = {
    "type": "object",
    "properties": {
        "accounts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "platform": {"type": "string"},
                    "accountId": {"type": "string"},
                    "healthy": {"type": "boolean"},
                    "status": {"type": "string", "enum": ["healthy", "unhealthy", "reconnect needed"]},
                    "reconnect": {
                        "type": ["object", "null"],
                        "properties": {"reason": {"type": "string"}, "command": {"type": "string"}},
                        "required": ["reason", "command"],
                    },
                    "lastErrorCode": _NULLABLE_STRING,
                    "lastSyncFailureAt": _NULLABLE_TIMESTAMP,
                    "lastSuccessAt": _NULLABLE_TIMESTAMP,
                    "reports": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "reportType": {"type": "string"},
                                "dateRange": {"type": "string"},
                                "fetchedAt": _TIMESTAMP,
                                "expiresAt": _TIMESTAMP,
                                "stale": {"type": "boolean"},
                            },
                            "required": ["reportType", "dateRange", "fetchedAt", "expiresAt", "stale"],
                        },
                    },
                },
                "required": [
                    "platform",
                    "accountId",
                    "healthy",
                    "status",
                    "reconnect",
                    "lastErrorCode",
                    "lastSyncFailureAt",
                    "lastSuccessAt",
                    "reports",
                ],
            },
        },
        "recentFailures": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "platform": {"type": "string"},
                    "accountId": {"type": "string"},
                    "reportType": {"type": "string"},
                    "dateRange": {"type": "string"},
                    "attempt": {"type": "integer"},
                    "final": {"type": "boolean", "description": "The last attempt (retries exhausted)."},
                    "errorCode": _NULLABLE_STRING,
                    "error": _NULLABLE_STRING,
                    "at": _TIMESTAMP,
                },
                "required": ["platform", "accountId", "reportType", "dateRange", "attempt", "final", "at"],
            },
        },
        "apiVersions": {
            "type": "object",
            "description": "Per platform this daemon syncs: its API version and its published sunset.",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "version": {"type": "string"},
                    "sunset": {
                        "type": ["string", "null"],
                        "format": "date",
                        "description": "When the version stops answering (null: none published).",
                    },
                    "sunsetProjected": {
                        "type": ["boolean", "null"],
                        "description": "Only the month was announced; sunset is its first day.",
                    },
                    "daysLeft": {"type": ["integer", "null"]},
                    "status": {"type": "string", "enum": ["current", "sunsetting", "sunset", "unlisted"]},
                    "replacement": {
                        "type": ["string", "null"],
                        "description": "The version to move to, unless this one is current.",
                    },
                },
                "required": ["version", "sunset", "sunsetProjected", "daysLeft", "status", "replacement"],
            },
        },
    },
    "required": ["accounts", "recentFailures", "apiVersions"],
}


# -- SQL ------------------------------------------------------------------------------------

# Account resolution and the cache read: deneva.mcp.report_reads (one round trip, shared by
# the calls under way). The account ids, for the message when accountId is not connected:
_ACCOUNT_IDS = query("mcp_account_ids")
_STATUS_ACCOUNTS = query("mcp_status_accounts")
_STATUS_REPORTS = query("mcp_status_reports")
_STATUS_FAILURES = query("mcp_status_failures")
_RUN_FAILURE = query("mcp_run_failure")


# -- account resolution -------------------------------------------------------------------


@attrs.frozen
class Resolved:
    """The account a call is about, with its cache row for the report when one exists."""

    account_id: str
    healthy: bool
    last_error_code: str | None
    cached: CacheResult | None


async def _resolve(
    services: ToolServices,
    tenant: uuid.UUID,
    platform: str,
    account_id: str | None,
    report: tuple[str, str] | None,
    now: float,
) -> Resolved | str:
    """The account (and, with `report` = (type, range), its cache row), or an error message.

    A cache hit is one crossing and one round trip, shared with the calls made at the same
    time (ReportReads); only the error messages need more.
    """
    db = services.db
    report_type, date_range = report or ("", "")
    rows = await services.reads.read(tenant, platform, report_type, date_range, account_id)
    if len(rows) == 1:
        row = rows[0]
        payload = row["payload"]
        cached = hit_from_row(row, now, RawJson(payload)) if report and payload is not None else None
        return Resolved(row["account_id"], bool(row["healthy"]), row["last_error_code"], cached)
    if not rows and account_id is None:
        return f"{platform} is not connected for this tenant: connect an account first (deneva connect)."
    if not rows:
        found = await db.tenant_transaction(
            str(tenant), lambda conn: conn.fetch(_ACCOUNT_IDS, tenant, platform, MAX_ACCOUNTS + 1)
        )
        ids = [r["account_id"] for r in found]
        if not ids:
            return f"{platform} is not connected for this tenant: connect an account first (deneva connect)."
        return f"Argument 'accountId': {platform} account {account_id!r} is not connected; {_listing(ids)}."
    ids = [r["account_id"] for r in rows]
    return f"Several {platform} accounts are connected; pass 'accountId': {_listing(ids)}."


def _listing(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_ACCOUNTS])
    more = f" and {len(ids) - MAX_ACCOUNTS} more" if len(ids) > MAX_ACCOUNTS else ""
    return f"connected accounts: {shown}{more}"


# -- helpers --------------------------------------------------------------------------------


def _tenant(ctx: ToolContext) -> uuid.UUID:
    try:
        return uuid.UUID(str(ctx.tenant_id))
    except ValueError:
        log.error("MCP tool called with a malformed tenant id")
        raise ToolError("This API key is not bound to a valid tenant.") from None


def _iso(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.isoformat()


def _check_report(platform: str, report_type: str, date_range: str) -> None:
    problem = report_problem(platform, report_type, date_range)
    if problem is not None:
        raise ToolError(f"{problem}.")


def _check_account(tool: str, platform: str, account_id: str | None) -> None:
    """Refuse an accountId that is not an id of `platform`'s kind (the schema has already
    refused anything else than digits, dashes and act_)."""
    if account_id is None:
        return
    what = account_id_problem(platform, account_id)
    if what is not None:
        raise ToolError(
            f"Invalid arguments for tool {tool}: argument 'accountId' must be {what}, got {account_id!r}"
        )


class RefreshFailed(Exception):
    """The refresh run a miss waited for failed: its typed code and message (sync_log's)."""

    def __init__(
        self,
        code: str,
        message: str,
        retry_in_s: float | None = None,
        run_id: uuid.UUID | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_in_s = retry_in_s  # when the run tries again, if it does
        self.run_id = run_id


class RefreshPending(Exception):
    """The refresh run a miss waited for had not finished within the tool's time limit."""

    def __init__(self, run_id: uuid.UUID, status: str) -> None:
        super().__init__(f"run {run_id} is {status}")
        self.run_id = run_id
        self.status = status


def _fetch_failure(exc: BaseException, target: RefreshTarget) -> ToolError:
    """A failed miss as a tool error led by its typed code; anything unforeseen is re-raised
    (the registry logs it and answers a generic failure, never a stack trace)."""
    what = f"{target.platform} {target.report_type} for account {target.account_id}"
    if isinstance(exc, RefreshFailed):
        hint = _HINTS.get(exc.code, "")
        if exc.code == "credential_unreadable":
            hint = "The stored credential cannot be decrypted: reconnect the account."
        if exc.retry_in_s is not None:
            hint = (
                f"{hint} The refresh tries again in {max(1, round(exc.retry_in_s))} s "
                f"(run {exc.run_id}); ask again then."
            ).lstrip()
        return ToolError(f"{exc.code}: could not fetch {what}: {exc.message.rstrip('.')}. {hint}".rstrip())
    if isinstance(exc, RefreshPending):
        return ToolError(
            f"transient: {what} is still being fetched (refresh run {exc.run_id}, {exc.status}); "
            "ask again shortly, or call refresh_report with wait=true."
        )
    if isinstance(exc, CacheWaitTimeout):
        return ToolError(f"transient: {exc} Try again shortly.")
    raise exc


# -- the report tools -------------------------------------------------------------------------


def _report_handler(
    services: ToolServices, report_type: str
) -> Callable[[JsonObject, ToolContext], Awaitable[JsonObject]]:
    tool = f"get_{report_type}"

    async def handler(args: JsonObject, ctx: ToolContext) -> JsonObject:
        tenant = _tenant(ctx)
        platform, date_range = args["platform"], args["dateRange"]
        account_id: str | None = args.get("accountId")
        _check_report(platform, report_type, date_range)
        _check_account(tool, platform, account_id)
        now = services.clock.now()
        resolved = await _resolve(services, tenant, platform, account_id, (report_type, date_range), now)
        if isinstance(resolved, str):
            raise ToolError(resolved)
        if resolved.cached is not None:
            services.on_cache_read(tool, "stale" if resolved.cached.stale else "hit")
            return resolved.cached.envelope()
        services.on_cache_read(tool, "miss")
        target = RefreshTarget(tenant, platform, resolved.account_id, report_type, date_range)
        if not resolved.healthy and resolved.last_error_code == "token_revoked":
            # Asking the platform again would only be refused again (and count against limits).
            raise ToolError(
                f"token_revoked: {platform} account {resolved.account_id} has no cached {report_type} "
                f"and its credential was revoked. {_HINTS['token_revoked']}"
            )
        services.get_sync()  # a daemon without the sync cannot fetch: say so now
        engine = services.get_engine()
        deadline = trio.current_time() + services.fetch_wait_s

        async def refresh() -> None:
            await _refresh_and_wait(services, engine, target, deadline)

        try:
            result = await read_or_refresh(
                services.db,
                target.key,
                refresh,
                clock=services.clock,
                owner=services.owner,
                wait_s=services.fetch_wait_s,
            )
        except Exception as exc:
            raise _fetch_failure(exc, target) from None
        return result.envelope()

    return handler


async def _refresh_and_wait(
    services: ToolServices, engine: Engine, target: RefreshTarget, deadline: float
) -> None:
    """Join (or enqueue) the key's refresh-tenant-report run and wait for it until `deadline`:
    a miss fetches through the worker's durable, logged, rate-limited path like every
    other platform call. Raises RefreshFailed or RefreshPending unless it stored the row.

    An attempt that failed with its retry due after the deadline answers at once with that
    attempt's typed error and when the run tries again (the run carries on)."""
    sent = await engine.send(target.event(uuid.uuid4().hex))
    if not sent.run_ids:
        log.error("a cache miss started no refresh run", extra={"errors": list(sent.errors)})
        raise ToolError("Reports cannot be fetched: no refresh function runs in this daemon.")
    run_id = sent.run_ids[0]
    tenant = target.tenant_id
    while True:
        left = deadline - trio.current_time()
        record = await engine.wait_for_run(run_id, max(0.0, min(left, PROGRESS_EVERY_S)))
        if record.status in FINISHED:
            break
        left = deadline - trio.current_time()
        retry_in = record.run_at.timestamp() - services.clock.now()
        if record.status == "queued" and record.last_error and retry_in > left:
            code, message = await _failure_of(services, tenant, record)
            raise RefreshFailed(code, message, retry_in, run_id)
        if left <= 0:
            raise RefreshPending(run_id, record.status)
    if record.status == "succeeded":
        return
    if record.status == "cancelled":
        raise RefreshFailed("transient", "the refresh was cancelled")
    raise RefreshFailed(*await _failure_of(services, tenant, record))


async def _failure_of(services: ToolServices, tenant: uuid.UUID, record: RunRecord) -> tuple[str, str]:
    result: tuple[str, str] = await services.db.tenant_transaction(
        str(tenant), lambda conn: _run_failure(conn, tenant, record)
    )
    return result


# -- refresh_report ---------------------------------------------------------------------------


async def _report_progress(progress: ProgressFn | None, done: float, total: float, message: str) -> bool:
    """Report progress; False once the transport's callback failed (then stop calling it)."""
    if progress is None:
        return False
    try:
        await progress(done, total, message)
    except Exception:
        log.debug("progress notification failed", exc_info=True)
        return False
    return True


async def _wait(
    engine: Engine, run_id: uuid.UUID, timeout_s: float, progress: ProgressFn | None
) -> RunRecord:
    """The run once finished, or its latest record after `timeout_s` (reporting progress)."""
    started = trio.current_time()
    deadline = started + timeout_s
    while True:
        left = deadline - trio.current_time()
        record = await engine.wait_for_run(run_id, max(0.0, min(PROGRESS_EVERY_S, left)))
        if record.status in FINISHED or trio.current_time() >= deadline:
            return record
        message = f"refresh {record.status} (attempt {record.attempt} of {record.max_attempts})"
        if progress is not None and not await _report_progress(
            progress, round(trio.current_time() - started, 3), timeout_s, message
        ):
            progress = None


async def _run_failure(conn: Connection, tenant: uuid.UUID, record: RunRecord) -> tuple[str, str]:
    """The failed run's error code and message: its last sync_log failure, else its error."""
    row = await conn.fetchrow(_RUN_FAILURE, tenant, str(record.id))
    if row is not None and row["error_code"]:
        return row["error_code"], row["error_message"] or row["error_code"]
    error = record.last_error or "the refresh failed"
    typed = _TYPED_ERROR.match(error)  # the worker's "code: message"
    if typed:
        return typed[1], typed[2]
    return ("transient" if "timed out" in error else "internal"), error


def _refresh_handler(services: ToolServices) -> Callable[[JsonObject, ToolContext], Awaitable[JsonObject]]:
    async def handler(args: JsonObject, ctx: ToolContext) -> JsonObject:
        tenant = _tenant(ctx)
        platform, report_type, date_range = args["platform"], args["reportType"], args["dateRange"]
        _check_report(platform, report_type, date_range)
        _check_account("refresh_report", platform, args.get("accountId"))
        wait_s = services.refresh_limit.retry_in_s(str(tenant))
        if wait_s is not None:
            limit = services.refresh_limit
            raise ToolError(
                f"rate_limited: refresh_report takes at most {limit.limit} calls a tenant per "
                f"{limit.period_s:.0f} s; try again in {max(1, round(wait_s))} s. A report already "
                "waiting to refresh is refreshed once, however often it is asked for."
            )
        now = services.clock.now()
        resolved = await _resolve(services, tenant, platform, args.get("accountId"), None, now)
        if isinstance(resolved, str):
            raise ToolError(resolved)
        engine = services.get_engine()
        data = {
            "tenant_id": str(tenant),
            "platform": platform,
            "account_id": resolved.account_id,
            "report_type": report_type,
            "date_range": date_range,
            "force": True,  # asked for by a user: refresh even if the cached row is fresh
        }
        sent = await engine.send({"name": REFRESH_EVENT, "data": data})
        if not sent.run_ids:
            log.error("refresh_report started no run", extra={"errors": list(sent.errors)})
            raise ToolError("Refreshing reports is not available in this daemon (no refresh function runs).")
        run_id = sent.run_ids[0]
        if not args["wait"]:
            return {"runId": str(run_id), "status": "queued"}
        record = await _wait(engine, run_id, float(args["timeoutS"]), ctx.progress)
        out: JsonObject = {"runId": str(run_id), "attempt": record.attempt}
        if record.status == "succeeded":
            output = record.output if isinstance(record.output, dict) else {}
            out["status"] = "completed"
            fetched_at = output.get("fetchedAt")
            if isinstance(fetched_at, int | float):
                out["fetchedAt"] = _iso(fetched_at)
        elif record.status == "failed":
            failed = record
            code, message = await services.db.tenant_transaction(
                str(tenant), lambda conn: _run_failure(conn, tenant, failed)
            )
            out.update(status="failed", errorCode=code, error=message)
        elif record.status == "cancelled":
            out["status"] = "cancelled"
        else:
            out.update(status="timed_out_waiting", runStatus=record.status)
        return out

    return handler


# -- get_sync_status ----------------------------------------------------------------------------


async def _sync_status(conn: Connection, tenant: uuid.UUID, platform: str | None, now: float) -> JsonObject:
    accounts = await conn.fetch(_STATUS_ACCOUNTS, tenant, platform, MAX_ACCOUNTS * len(PLATFORMS))
    reports = await conn.fetch(_STATUS_REPORTS, tenant, platform, MAX_CACHED_REPORTS)
    since = datetime.fromtimestamp(now - RECENT_FAILURES_S, UTC)  # sync_log is stamped on the clock
    failures = await conn.fetch(_STATUS_FAILURES, tenant, platform, MAX_FAILURES, since)
    by_account: dict[tuple[str, str], list[JsonObject]] = {}
    for r in reports:
        by_account.setdefault((r["platform"], r["account_id"]), []).append(
            {
                "reportType": r["report_type"],
                "dateRange": r["date_range"],
                "fetchedAt": _iso(r["fetched_at"]),
                "expiresAt": _iso(r["expires_at"]),
                "stale": bool(r["is_stale"]) or r["expires_at"].timestamp() <= now,
            }
        )

    def reconnect(a: Any) -> Reconnect | None:
        return reconnect_needed(
            a["platform"],
            a["tenant"],
            a["account_id"],
            a["last_error_code"],
            a["access_token_expires_at"],
            now,
        )

    needs = {(a["platform"], a["account_id"]): reconnect(a) for a in accounts}
    return {
        "accounts": [
            {
                "platform": a["platform"],
                "accountId": a["account_id"],
                "healthy": bool(a["healthy"]),
                "status": health_status(bool(a["healthy"]), needs[(a["platform"], a["account_id"])]),
                "reconnect": _as_json(needs[(a["platform"], a["account_id"])]),
                "lastErrorCode": a["last_error_code"],
                "lastSyncFailureAt": _iso(a["last_sync_failure_at"]),
                "lastSuccessAt": _iso(a["last_success_at"]),
                "reports": by_account.get((a["platform"], a["account_id"]), []),
            }
            for a in accounts
        ],
        "recentFailures": [
            {
                "platform": f["platform"],
                "accountId": f["account_id"],
                "reportType": f["report_type"],
                "dateRange": f["date_range"],
                "attempt": f["attempt"],
                "final": f["outcome"] == "failure_final",
                "errorCode": f["error_code"],
                "error": f["error_message"],
                "at": _iso(f["created_at"]),
            }
            for f in failures
        ],
    }


def _as_json(reconnect: Reconnect | None) -> JsonObject | None:
    return None if reconnect is None else reconnect.as_json()


def _status_handler(services: ToolServices) -> Callable[[JsonObject, ToolContext], Awaitable[JsonObject]]:
    async def handler(args: JsonObject, ctx: ToolContext) -> JsonObject:
        tenant = _tenant(ctx)
        platform: str | None = args.get("platform")
        now = services.clock.now()
        status: JsonObject = await services.db.tenant_transaction(
            str(tenant), lambda conn: _sync_status(conn, tenant, platform, now)
        )
        sync = services.sync_or_none()
        versions = {} if sync is None else api_versions(sync.adapters, now)
        status["apiVersions"] = {p: v for p, v in versions.items() if platform is None or p == platform}
        return status

    return handler


# -- get_portfolio_overview --------------------------------------------------------------------


def _portfolio_handler(services: ToolServices) -> Callable[[JsonObject, ToolContext], Awaitable[JsonObject]]:
    async def handler(args: JsonObject, ctx: ToolContext) -> JsonObject:
        tenant = _tenant(ctx)
        date_range = args["dateRange"]
        now = services.clock.now()
        read = await read_portfolio(services.db, tenant, date_range, now)
        pending = bool(read.to_refresh) or read.overview.pending_count > 0
        services.on_cache_read(
            "get_portfolio_overview", "miss" if pending else "stale" if read.stale else "hit"
        )
        if read.to_refresh:
            # From the cache alone: an account not cached yet gets its refresh queued (joined
            # if one is), for the next call; this one answers without it.
            events = [t.event(uuid.uuid4().hex) for t in read.to_refresh]
            try:
                await services.get_engine().send(events)
            except Exception:
                log.exception("portfolio overview: queueing %d refreshes failed", len(events))
        fetched = read.oldest_fetch.timestamp() if read.oldest_fetch is not None else now
        out: JsonObject = {
            "data": read.overview.to_json(),
            "cache": "miss" if pending else "hit",
            "fetchedAt": _iso(fetched),
        }
        if read.stale:
            out["stale"] = True
        return out

    return handler


# -- the factory ---------------------------------------------------------------------------------


def report_tools(services: ToolServices) -> list[Tool]:
    tools = [
        Tool(
            name,
            f"{_DESCRIPTIONS[report_type]} Served from deneva's cache (kept warm in the background); "
            "'stale' means a refresh is pending or the account's last sync failed.",
            REPORT_INPUT,
            REPORT_OUTPUT,
            _report_handler(services, report_type),
            title=_TITLES[report_type],
            # A cache miss fetches the report from the ad platform.
            hints={
                "readOnlyHint": True,
                "destructiveHint": False,
                "idempotentHint": True,
                "openWorldHint": True,
            },
        )
        for name, report_type in REPORT_TOOLS.items()
    ]
    tools.append(
        Tool(
            "get_portfolio_overview",
            "Portfolio overview: every connected ad account of the tenant on every platform over "
            "dateRange, from deneva's cache alone: spend, conversions, CPA and ROAS per account, per "
            "platform and blended, with the change against the previous period, each account's freshness "
            "and health. Amounts are totalled per currency, never across currencies. An account not cached "
            "yet is 'pending' and its refresh is queued.",
            PORTFOLIO_INPUT,
            PORTFOLIO_OUTPUT,
            _portfolio_handler(services),
            title="Portfolio overview",
            # From the cache alone (a pending account's refresh is queued, not awaited).
            hints={
                "readOnlyHint": True,
                "destructiveHint": False,
                "idempotentHint": True,
                "openWorldHint": False,
            },
        )
    )
    tools.append(
        Tool(
            "refresh_report",
            "Refresh one cached report from the ad platform now. Returns {runId, status: 'queued'} at once; "
            "with wait=true, waits up to timeoutS for 'completed' or 'failed' (else 'timed_out_waiting' "
            "while the refresh carries on).",
            REFRESH_INPUT,
            REFRESH_OUTPUT,
            _refresh_handler(services),
            waits=True,
            title="Refresh a report",
            hints={
                "readOnlyHint": False,
                "destructiveHint": False,
                "idempotentHint": True,
                "openWorldHint": True,
            },
            scope="reports:refresh",
        )
    )
    tools.append(
        Tool(
            "get_sync_status",
            "Sync health of the connected ad accounts: per account whether its last sync worked, its "
            "cached reports with their age, the sync failures of the last 24 hours, and the platform API "
            "versions in use with their published sunset dates.",
            STATUS_INPUT,
            STATUS_OUTPUT,
            _status_handler(services),
            title="Sync status",
            hints={
                "readOnlyHint": True,
                "destructiveHint": False,
                "idempotentHint": True,
                "openWorldHint": False,
            },
        )
    )
    return tools


def build_tools(services: ToolServices) -> ToolRegistry:
    """The registry of every deneva tool, for `McpServer(build_tools(services), sessions)`."""
    return ToolRegistry(report_tools(services))
