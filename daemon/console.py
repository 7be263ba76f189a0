"""What the operator console (`/admin/`, issue 15) shows and does: read models over the
engine's API and the daemon's own tables, and the actions, each with its audit row in
the action's own transaction. `deneva.http.console` renders them; nothing here knows HTTP.

- Overview: the canary's age, queue depth and lag, finished and failed runs over 24 h
  (per 15 minutes, drawn as server-side SVG bars), this replica's cache hit ratio, the
  replicas seen (each node's own beat, `actors/canary.py`), recent console actions.
- Sync health: a matrix tenant x (platform, report type), each cell `fresh`, `stale`,
  `failing` or `never` fetched, with its latest fetch and error code; the credentials
  waiting for a reconnect. "Refresh now" sends the sync's own refresh event (what
  `refresh_report` sends); "reconnect" starts a browser connect flow, as `deneva
  connect` does, and shows its one-time link.
- Runs: `deneva.engine`'s `find_runs` / `retry_matching` / `cancel_matching` behind a
  filter parsed here (a bad value names its field), and a run's steps, attempts and
  error, with every secret-looking value redacted.
- Tenants and keys: `deneva.tenants`' own functions (the CLI's), the actor the console's.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import trio

from deneva.canary import MAX_AGE_S, REPLICA, Beat, latest_beat
from deneva.clock import as_datetime
from deneva.connect import begin_flow, start_url
from deneva.console_auth import ConsoleSession, audit
from deneva.db import Connection, Database
from deneva.engine.engine import Engine
from deneva.engine.events import new_event_id
from deneva.engine.model import (
    FINISHED,
    STATUSES,
    UNFINISHED,
    FinishedBucket,
    PauseRecord,
    QueueStats,
    RunCursor,
    RunFilter,
    RunRecord,
    SendResult,
    StepRecord,
)
from deneva.errors import DatabaseError, DenevaError
from deneva.logs import REDACTED
from deneva.logs import redact as redact_registered
from deneva.metrics import CacheReads
from deneva.sql import query
from deneva.sync.cadence import CADENCES, Cadence, cadence_for
from deneva.sync.model import RefreshTarget
from deneva.sync.tokens import ReconnectNeeded, reconnects_needed
from deneva.tenants import NewKey, Tenant, add_tenant, check_tenant_name, create_key, revoke_key

DAY: Final = 86_400.0
CHART_BUCKET_S: Final = 900
PAGE_SIZE: Final = 50
_REPLICAS = query("console_replicas")
_RECENT = query("console_recent_audit")
_SYNC_TENANTS = query("console_sync_tenants")
_SYNC_CREDENTIALS = query("console_sync_credentials")
_SYNC_CACHE = query("console_sync_cache")
_SYNC_LATEST = query("console_sync_latest")
_ACCOUNTS = query("console_tenant_accounts")
_TENANTS = query("console_tenants")
_ATTEMPTS = query("console_run_attempts")


class ConsoleInputError(DenevaError):
    """A form or filter value the console cannot use: the field, and what it expects."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


def _shown(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


# -- secrets never shown --------------------------------------------------------------------

# Key names that hold secrets (after camelCase is split: accessToken -> access_token).
_SECRET_WORDS = re.compile(
    r"token|secret|password|passwd|passphrase|authorization|api_?key|cookie|private_?key|verifier|"
    r"signature|credential(?!_id)|session|bearer"
)
# ...unless they name when, how many or which (refresh_at, token_version, credential_id).
_BENIGN_SUFFIX = re.compile(r"_(at|ms|s|id|ids|count|version|expires|expiry|kind|type)$")
# Values in the formats deneva's and the platforms' secrets take, wherever they appear.
_SECRET_VALUES = re.compile(
    r"dnv_[A-Za-z0-9_-]{8,}"  # API keys, OAuth tokens and codes (deneva.tenants, deneva.oauth)
    r"|ya29\.[A-Za-z0-9._-]+"  # Google access tokens
    r"|1//[A-Za-z0-9._-]{10,}"  # Google refresh tokens
    r"|EAA[A-Za-z0-9]{20,}"  # Meta access tokens
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"  # JWTs
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
)


def secret_key(name: str) -> bool:
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower().replace("-", "_")
    return bool(_SECRET_WORDS.search(snake)) and not _BENIGN_SUFFIX.search(snake)


def redact_text(text: str) -> str:
    """`text` with every value in a secret's format, and every secret this process loaded
    (`deneva.logs.register_secret`), replaced by [redacted]."""
    return _SECRET_VALUES.sub(REDACTED, redact_registered(text))


def redact(value: Any) -> Any:
    """A JSON value with secret-looking keys' values and secret-looking strings redacted."""
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def shown_json(value: Any, limit: int = 20_000) -> str:
    """Pretty JSON of `value`, redacted, cut at `limit` characters."""
    text = json.dumps(redact(value), indent=2, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


# -- charts --------------------------------------------------------------------------------


@attrs.frozen
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str  # the bar's tooltip: its time and value


@attrs.frozen
class Chart:
    """A bar chart as SVG geometry (the template draws it; no script)."""

    title: str
    bars: tuple[Bar, ...]
    peak: float  # the value of a full-height bar
    total: float
    start_label: str
    end_label: str
    width: int = 720
    height: int = 120


def bar_chart(
    title: str,
    values: Mapping[float, float],
    since: float,
    bucket_s: int,
    count: int,
    unit: str,
    width: int = 720,
    height: int = 120,
) -> Chart:
    """`count` buckets of `bucket_s` seconds from `since` (`values`: bucket start -> value;
    absent buckets are 0)."""
    first = since - since % bucket_s
    starts = [first + i * bucket_s for i in range(count)]
    series = [float(values.get(s, 0.0)) for s in starts]
    peak = max(series, default=0.0) or 1.0
    slot = width / count
    bars = []
    for start, value in zip(starts, series, strict=True):
        h = round(value / peak * (height - 4), 2)
        when = as_datetime(start).strftime("%H:%M")
        shown = f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"
        bars.append(
            Bar(
                round((start - first) / bucket_s * slot, 2),
                height - h,
                max(1.0, slot - 1),
                h,
                f"{when} {shown} {unit}",
            )
        )
    return Chart(
        title,
        tuple(bars),
        peak if any(series) else 0.0,
        sum(series),
        as_datetime(first).strftime("%Y-%m-%d %H:%M UTC"),
        as_datetime(first + count * bucket_s).strftime("%Y-%m-%d %H:%M UTC"),
        width,
        height,
    )


# -- overview ------------------------------------------------------------------------------


@attrs.frozen
class Replica:
    node: str
    last_beat_at: datetime
    age_s: float


@attrs.frozen
class AuditEntry:
    at: datetime
    event_type: str
    outcome: str
    actor: str
    tenant: str | None
    details: str


@attrs.frozen
class Overview:
    node: str
    now: float
    beat: Beat | None
    queue: QueueStats
    runs_chart: Chart
    failures_chart: Chart
    finished_24h: int
    failed_24h: int
    cache: CacheReads
    replicas: tuple[Replica, ...]
    recent: tuple[AuditEntry, ...]
    paused: tuple[PauseRecord, ...]

    @property
    def beat_age_s(self) -> float | None:
        return None if self.beat is None else self.beat.age_s(self.now)

    @property
    def alive(self) -> bool:
        age = self.beat_age_s
        return age is not None and age < MAX_AGE_S


def charts(buckets: Sequence[FinishedBucket], now: float) -> tuple[Chart, Chart]:
    """Runs finished per minute, and failed runs, over the last 24 h, per 15 minutes."""
    since = now - DAY + CHART_BUCKET_S  # 96 buckets, the last one holding now
    count = int(DAY // CHART_BUCKET_S)
    per_minute = {b.start: (b.succeeded + b.failed + b.cancelled) / (CHART_BUCKET_S / 60) for b in buckets}
    failed = {b.start: float(b.failed) for b in buckets}
    return (
        bar_chart("Runs finished per minute", per_minute, since, CHART_BUCKET_S, count, "runs/min"),
        bar_chart("Failed runs per 15 minutes", failed, since, CHART_BUCKET_S, count, "failed"),
    )


async def overview(
    db: Database, engine: Engine, node: str, cache: CacheReads, *, replicas_limit: int = 100
) -> Overview:
    """The overview's numbers; its independent reads go to the database at once."""
    now = engine.clock.now()
    since = now - DAY
    got: dict[str, Any] = {}

    async def read_rows(conn: Connection) -> tuple[list[Any], list[Any]]:
        return (
            await conn.fetch(_REPLICAS, REPLICA, replicas_limit),
            await conn.fetch(_RECENT, 20, as_datetime(now - 7 * DAY)),
        )

    failed: list[DatabaseError] = []

    async def fetch(name: str, coro: Any) -> None:
        try:
            got[name] = await coro
        except DatabaseError as exc:  # raised alone below, not in an exception group
            failed.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fetch, "beat", latest_beat(db))
        nursery.start_soon(fetch, "queue", engine.queue_stats())
        nursery.start_soon(fetch, "buckets", engine.finished_per_bucket(since, CHART_BUCKET_S))
        nursery.start_soon(fetch, "paused", engine.paused())
        nursery.start_soon(fetch, "rows", db.run(read_rows))
    if failed:
        raise failed[0]
    buckets: list[FinishedBucket] = got["buckets"]
    replica_rows, recent_rows = got["rows"]
    runs_chart, failures_chart = charts(buckets, now)
    counted = [b for b in buckets if b.start >= since - CHART_BUCKET_S]
    return Overview(
        node,
        now,
        got["beat"],
        got["queue"],
        runs_chart,
        failures_chart,
        sum(b.succeeded + b.failed + b.cancelled for b in counted),
        sum(b.failed for b in counted),
        cache,
        tuple(
            Replica(r["node"], r["last_beat_at"], max(0.0, now - r["last_beat_at"].timestamp()))
            for r in replica_rows
        ),
        tuple(
            AuditEntry(
                r["created_at"],
                r["event_type"],
                r["outcome"],
                r["actor"],
                r["tenant"],
                redact_text(json.dumps(r["details"], sort_keys=True, default=str))[:300],
            )
            for r in recent_rows
        ),
        tuple(got["paused"]),
    )


# -- sync health ---------------------------------------------------------------------------

CELL_STATES: Final = ("fresh", "stale", "failing", "never")


@attrs.frozen
class Cell:
    """One tenant's (platform, report type): `absent` when the tenant has no account on
    the platform, else `fresh`, `stale` (some reports past their TTL, marked stale or not
    fetched yet), `failing` (the latest attempt failed, or the credential is unhealthy)
    or `never` fetched."""

    platform: str
    report_type: str
    state: str
    cached: int = 0
    expected: int = 0
    last_fetched: datetime | None = None
    error_code: str | None = None
    failed_at: datetime | None = None


@attrs.frozen
class MatrixRow:
    tenant: str
    tenant_id: uuid.UUID
    cells: tuple[Cell, ...]
    accounts: Mapping[str, tuple[str, ...]]


@attrs.frozen
class SyncMatrix:
    columns: tuple[Cadence, ...]
    rows: tuple[MatrixRow, ...]
    reconnects: tuple[ReconnectNeeded, ...]
    next_after: str | None  # the next page starts after this tenant name

    def count(self, state: str) -> int:
        return sum(1 for row in self.rows for cell in row.cells if cell.state == state)

    @property
    def platforms(self) -> list[tuple[str, int]]:
        """The column groups: each platform and how many report types it has."""
        out: list[tuple[str, int]] = []
        for c in self.columns:
            if out and out[-1][0] == c.platform:
                out[-1] = (c.platform, out[-1][1] + 1)
            else:
                out.append((c.platform, 1))
        return out


def _cell(
    cadence: Cadence,
    accounts: Sequence[Any],
    cache: Any | None,
    latest: Any | None,
) -> Cell:
    if not accounts:
        return Cell(cadence.platform, cadence.report_type, "absent")
    expected = len(accounts) * len(cadence.date_ranges)
    cached = 0 if cache is None else int(cache["cached"])
    stale = 0 if cache is None else int(cache["stale"])
    fetched = None if cache is None else cache["last_fetched"]
    unhealthy = [a for a in accounts if not a["healthy"]]
    failure = latest if latest is not None and latest["outcome"] != "success" else None
    if failure is not None or unhealthy:
        code, when = (
            (failure["error_code"], failure["created_at"])
            if failure is not None
            else (unhealthy[0]["last_error_code"], unhealthy[0]["last_sync_failure_at"])
        )
        return Cell(cadence.platform, cadence.report_type, "failing", cached, expected, fetched, code, when)
    if cached == 0:
        state = "never"
    elif stale or cached < expected:
        state = "stale"
    else:
        state = "fresh"
    return Cell(cadence.platform, cadence.report_type, state, cached, expected, fetched)


async def sync_matrix(
    db: Database,
    now: float,
    *,
    after: str = "",
    tenant: str | None = None,
    limit: int = PAGE_SIZE,
    window_s: float = DAY,
) -> SyncMatrix:
    """A page of the matrix (tenants by name after `after`, or only `tenant`), and every
    credential waiting for a reconnect. The page's reads are one crossing."""

    async def read(conn: Connection) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
        tenants = await conn.fetch(_SYNC_TENANTS, after, tenant, limit + 1)
        ids = [t["id"] for t in tenants[:limit]]
        return (
            tenants,
            await conn.fetch(_SYNC_CREDENTIALS, ids),
            await conn.fetch(_SYNC_CACHE, ids, as_datetime(now)),
            await conn.fetch(_SYNC_LATEST, ids, as_datetime(now - window_s)),
        )

    tenants, credentials, cache, latest = await db.run(read)
    reconnects = await reconnects_needed(db, now)
    by_account: dict[tuple[uuid.UUID, str], list[Any]] = {}
    for row in credentials:
        by_account.setdefault((row["tenant_id"], row["platform"]), []).append(row)
    cached = {(r["tenant_id"], r["platform"], r["report_type"]): r for r in cache}
    last = {(r["tenant_id"], r["platform"], r["report_type"]): r for r in latest}
    rows = []
    for t in tenants[:limit]:
        cells = tuple(
            _cell(
                c,
                by_account.get((t["id"], c.platform), []),
                cached.get((t["id"], c.platform, c.report_type)),
                last.get((t["id"], c.platform, c.report_type)),
            )
            for c in CADENCES
        )
        accounts = {
            p: tuple(a["account_id"] for a in by_account.get((t["id"], p), []))
            for p in dict.fromkeys(c.platform for c in CADENCES)
        }
        rows.append(MatrixRow(t["name"], t["id"], cells, accounts))
    more = len(tenants) > limit
    return SyncMatrix(CADENCES, tuple(rows), tuple(reconnects), rows[-1].tenant if more and rows else None)


@attrs.frozen
class Refreshed:
    tenant: str
    platform: str
    report_type: str
    run_ids: tuple[uuid.UUID, ...]
    targets: int
    errors: tuple[str, ...]


async def _tenant(conn: Connection, name: str, field: str = "tenant") -> Tenant:
    from deneva.tenants import TenantError, tenant_by_name

    try:
        check_tenant_name(name)
        return await tenant_by_name(conn, name)
    except TenantError:
        raise ConsoleInputError(field, f"no tenant named {_shown(name)}") from None


def _cadence(platform: str, report_type: str) -> Cadence:
    cadence = cadence_for(platform, report_type)
    if cadence is None:
        known = sorted({c.platform for c in CADENCES})
        if platform not in known:
            raise ConsoleInputError("platform", f"expected one of {', '.join(known)}, got {_shown(platform)}")
        reports = [c.report_type for c in CADENCES if c.platform == platform]
        raise ConsoleInputError(
            "report", f"{platform} reports are {', '.join(reports)}; got {_shown(report_type)}"
        )
    return cadence


async def refresh_now(
    db: Database, engine: Engine, session: ConsoleSession, tenant: str, platform: str, report_type: str
) -> Refreshed:
    """Refresh one tenant's report of one platform now: every connected account and every
    date range the cache keeps, with the event `refresh_report` sends (`force`: even a
    fresh row is fetched again); sent, and audited, in one transaction."""
    cadence = _cadence(platform, report_type)

    async def accounts_of(conn: Connection) -> tuple[Tenant, list[str]]:
        found = await _tenant(conn, tenant)
        return found, [r["account_id"] for r in await conn.fetch(_ACCOUNTS, found.id, platform)]

    found, accounts = await db.run(accounts_of)
    if not accounts:
        raise ConsoleInputError("platform", f"tenant {tenant} has no {platform} account connected")
    events = []
    for account in accounts:
        for date_range in cadence.date_ranges:
            event = RefreshTarget(found.id, platform, account, report_type, date_range).event(
                f"console:{new_event_id()}"
            )
            event["data"]["force"] = True  # asked for by an operator: fetch even a fresh row
            events.append(event)

    async def record(conn: Connection, sent: SendResult) -> None:
        details = {
            "platform": platform,
            "reportType": report_type,
            "accounts": accounts,
            "runs": len(sent.run_ids),
        }
        await audit(conn, session.actor, "console.sync_refresh", details, tenant_id=found.id)

    sent = await engine.send(events, audit=record)
    return Refreshed(tenant, platform, report_type, sent.run_ids, len(events), sent.errors)


@attrs.frozen(repr=False)
class ReconnectLink:
    """A browser connect's one-time link (shown once, to the operator who asked)."""

    tenant: str
    platform: str
    account_id: str
    url: str
    expires_at: float

    def __repr__(self) -> str:
        return f"ReconnectLink({self.tenant}, {self.platform}, {self.account_id}, url=***)"


async def reconnect_link(
    db: Database,
    session: ConsoleSession,
    tenant: str,
    platform: str,
    account_id: str,
    public_url: str,
    now: float,
) -> ReconnectLink:
    """Start a browser connect for one account, as `deneva connect PLATFORM --tenant NAME
    --account ID` does (the flow and its audit row in one transaction); its link."""
    from deneva.connect import ConnectError
    from deneva.tenants import TenantError

    async def begin(conn: Connection) -> Any:
        async with conn.transaction():
            found = await _tenant(conn, tenant)
            try:
                invitation = await begin_flow(conn, tenant, platform, session.actor, [account_id], now)
            except ConnectError as exc:
                field = "platform" if str(exc).startswith("PLATFORM") else "account"
                raise ConsoleInputError(field, str(exc).split(": ", 1)[-1]) from None
            except TenantError as exc:
                raise ConsoleInputError("tenant", str(exc)) from None
            details = {"platform": platform, "account": account_id, "flow": str(invitation.flow_id)}
            await audit(conn, session.actor, "console.reconnect_link", details, tenant_id=found.id)
            return invitation

    invitation = await db.run(begin)
    url = start_url(public_url, platform, invitation.state)
    return ReconnectLink(tenant, platform, account_id, url, invitation.expires_at)


# -- runs ----------------------------------------------------------------------------------

STATUS_CHOICES: Final = ("any", "unfinished", "finished", *STATUSES)
MAX_FILTER_CHARS = 200


@attrs.frozen
class RunQuery:
    """A runs filter as the operator wrote it (the form shows it back), and what it means."""

    status: str = "any"
    function: str = ""
    tenant: str = ""
    since: str = ""
    until: str = ""
    where: RunFilter = attrs.Factory(RunFilter)

    def params(self) -> dict[str, str]:
        """The filter as query parameters (pagination links, the bulk forms)."""
        values = {"status": self.status, "function": self.function, "tenant": self.tenant}
        values |= {"from": self.since, "until": self.until}
        return {k: v for k, v in values.items() if v and not (k == "status" and v == "any")}


def _statuses(status: str) -> tuple[str, ...]:
    if status == "any":
        return STATUSES
    if status == "unfinished":
        return UNFINISHED
    if status == "finished":
        return FINISHED
    if status in STATUSES:
        return (status,)
    raise ConsoleInputError("status", f"expected one of {', '.join(STATUS_CHOICES)}, got {_shown(status)}")


def parse_time(field: str, text: str) -> float:
    """An instant typed in a form: ISO 8601 (`2026-12-03T10:00`, a `datetime-local` value,
    taken as UTC, or with an offset)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConsoleInputError(
            field,
            f"expected a time like 2026-12-03T10:00 (UTC) or 2026-12-03T10:00+01:00, got {_shown(text)}",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1971 <= value.year <= 8999:  # any offset keeps it a time Postgres and Python both hold
        raise ConsoleInputError(field, f"expected a year from 1971 to 8999, got {_shown(text)}")
    return value.timestamp()


def _text(args: Mapping[str, str], name: str) -> str:
    value = args.get(name, "") or ""
    if len(value) > MAX_FILTER_CHARS or "\x00" in value:
        raise ConsoleInputError(name, f"at most {MAX_FILTER_CHARS} characters of text")
    return value.strip()


async def parse_run_query(db: Database, engine: Engine, args: Mapping[str, str]) -> RunQuery:
    """A runs filter from query or form fields: `status`, `function`, `tenant` (a name),
    `from`, `until`; ConsoleInputError names the first bad one."""
    status = _text(args, "status") or "any"
    function = _text(args, "function")
    tenant = _text(args, "tenant")
    since, until = _text(args, "from"), _text(args, "until")
    statuses = _statuses(status)
    if function and function not in engine.registry:
        raise ConsoleInputError("function", f"no function {_shown(function)} is registered (see Functions)")
    start = parse_time("from", since) if since else None
    end = parse_time("until", until) if until else None
    if start is not None and end is not None and end <= start:
        raise ConsoleInputError("until", "must be later than from")
    data = None
    if tenant:
        found = await db.run(lambda conn: _tenant(conn, tenant))
        data = {"tenant_id": str(found.id)}
    where = RunFilter(statuses, function or None, data, start, end)
    return RunQuery(status, function, tenant, since, until, where)


def parse_cursor(text: str) -> RunCursor:
    """A page's cursor, `<time>~<run id>` as `cursor_text` writes it."""
    at, sep, run_id = text.partition("~")
    try:
        if not sep or len(text) > 100:
            raise ValueError
        when = datetime.fromisoformat(at)
        return RunCursor(when if when.tzinfo else when.replace(tzinfo=UTC), uuid.UUID(run_id))
    except ValueError:
        raise ConsoleInputError("after", f"not a page cursor this console made: {_shown(text)}") from None


def cursor_text(cursor: RunCursor) -> str:
    return f"{cursor.at.isoformat()}~{cursor.run_id}"


def parse_run_id(text: str, field: str = "run id") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ConsoleInputError(field, f"expected a run id (a UUID), got {_shown(text)}") from None


@attrs.frozen
class StepView:
    id: str
    completed_at: datetime
    offset_s: float  # from the run's first start to the step's completion
    took_s: float  # since the previous step completed (or the run started)
    output: str  # redacted JSON


@attrs.frozen
class Attempt:
    attempt: int
    account_id: str
    date_range: str
    outcome: str
    duration_ms: int
    error_code: str | None
    error_message: str | None
    at: datetime


@attrs.frozen
class RunView:
    record: RunRecord
    steps: tuple[StepView, ...]
    attempts: tuple[Attempt, ...]
    event: str
    output: str
    error: str | None
    traceback: str | None

    @property
    def span_s(self) -> float:
        """The timeline's length: to the last step, or the run's end."""
        ends = [s.offset_s for s in self.steps]
        if self.record.started_at is not None and self.record.finished_at is not None:
            ends.append((self.record.finished_at - self.record.started_at).total_seconds())
        return max([*ends, 0.001])

    @property
    def retryable(self) -> bool:
        return self.record.status in ("failed", "cancelled")

    @property
    def cancellable(self) -> bool:
        return self.record.status in UNFINISHED


def _step_views(record: RunRecord, steps: Sequence[StepRecord]) -> tuple[StepView, ...]:
    begin = record.started_at or record.created_at
    previous = begin
    out = []
    for step in steps:
        out.append(
            StepView(
                step.step_id,
                step.completed_at,
                max(0.0, (step.completed_at - begin).total_seconds()),
                max(0.0, (step.completed_at - previous).total_seconds()),
                shown_json(step.output, 5_000),
            )
        )
        previous = max(previous, step.completed_at)
    return tuple(out)


async def _attempts(db: Database, record: RunRecord) -> tuple[Attempt, ...]:
    """A sync run's attempts, from sync_log (other functions keep no per-attempt record)."""
    data = record.event.get("data") if isinstance(record.event, dict) else None
    if not isinstance(data, dict):
        return ()
    try:
        tenant_id = uuid.UUID(str(data.get("tenant_id")))
    except ValueError:
        return ()
    platform, report_type = data.get("platform"), data.get("report_type")
    if not isinstance(platform, str) or not isinstance(report_type, str):
        return ()
    rows = await db.fetch(_ATTEMPTS, tenant_id, platform, report_type, record.created_at, str(record.id))
    return tuple(
        Attempt(
            r["attempt"],
            r["account_id"],
            r["date_range"],
            r["outcome"],
            r["duration_ms"],
            r["error_code"],
            None if r["error_message"] is None else redact_text(r["error_message"]),
            r["created_at"],
        )
        for r in rows
    )


async def run_view(db: Database, engine: Engine, run_id: uuid.UUID) -> RunView:
    """One run as the console shows it; RunNotFound if there is none."""
    record = await engine.get_run(run_id)
    steps = await engine.get_steps(run_id)
    attempts = await _attempts(db, record)
    return RunView(
        record,
        _step_views(record, steps),
        attempts,
        shown_json(record.event),
        shown_json(record.output),
        None if record.last_error is None else redact_text(record.last_error),
        None if record.last_traceback is None else redact_text(record.last_traceback),
    )


def run_audit(session: ConsoleSession, event_type: str, details: dict[str, Any]) -> Any:
    """The audit callback of an engine action (`Engine.retry(..., audit=...)`): the row,
    with what the action returned."""

    async def record(conn: Connection, result: Any) -> None:
        await audit(conn, session.actor, event_type, {**details, "result": _jsonable(result)})

    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        if len(value) > 50:
            return {"count": len(value)}
        return [_jsonable(v) for v in value]
    if attrs.has(type(value)):
        return {k: _jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    return value


def filter_details(query_: RunQuery) -> dict[str, Any]:
    return {"filter": query_.params()}


# -- functions ---------------------------------------------------------------------------

MAX_INVOKE_BYTES: Final = 64 * 1024


def parse_invoke_data(text: str) -> dict[str, Any]:
    """The JSON object an operator gives a function run."""
    if len(text.encode()) > MAX_INVOKE_BYTES:
        raise ConsoleInputError("data", f"at most {MAX_INVOKE_BYTES // 1024} KB of JSON")
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConsoleInputError("data", f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(value, dict):
        raise ConsoleInputError("data", f"expected a JSON object, got {type(value).__name__}")
    return value


def check_function(engine: Engine, function_id: str) -> str | None:
    """The function a form names ('*' or '': the whole engine, None)."""
    if function_id in ("*", ""):
        return None
    if len(function_id) > 100 or function_id not in engine.registry:
        raise ConsoleInputError("function", f"no function {_shown(function_id)} is registered")
    return function_id


# -- tenants and keys ------------------------------------------------------------------------


@attrs.frozen
class TenantLine:
    id: uuid.UUID
    name: str
    created_at: datetime
    keys: int
    accounts: int
    grants: int


@attrs.frozen
class TenantDetail:
    tenant: Tenant
    keys: tuple[dict[str, Any], ...]
    credentials: tuple[dict[str, Any], ...]
    grants: tuple[dict[str, Any], ...]


async def tenant_lines(
    db: Database, after: str = "", limit: int = PAGE_SIZE
) -> tuple[list[TenantLine], str | None]:
    rows = await db.fetch(_TENANTS, after, limit + 1)
    lines = [
        TenantLine(r["id"], r["name"], r["created_at"], r["keys"], r["accounts"], r["grants"]) for r in rows
    ]
    more = len(lines) > limit
    return lines[:limit], (lines[limit - 1].name if more else None)


async def tenant_detail(db: Database, name: str) -> TenantDetail:
    """One tenant's keys (never their secrets: only a hash is stored), accounts and grants."""
    from deneva.oauth.store import list_grants
    from deneva.tenants import list_keys

    async def read(conn: Connection) -> TenantDetail:
        found = await _tenant(conn, name)
        credentials = await conn.fetch(_SYNC_CREDENTIALS, [found.id])  # the matrix's read, one tenant
        return TenantDetail(
            found,
            tuple(await list_keys(conn, name)),
            tuple(dict(r) for r in credentials),
            tuple(await list_grants(conn, name)),
        )

    return await db.run(read)


async def create_tenant(db: Database, session: ConsoleSession, name: str) -> Tenant:
    from deneva.tenants import TenantError

    try:
        check_tenant_name(name)
    except TenantError as exc:
        raise ConsoleInputError("name", str(exc).split(": ", 1)[-1]) from None

    async def create(conn: Connection) -> Tenant:
        try:
            tenant = await add_tenant(conn, name)
        except TenantError as exc:
            raise ConsoleInputError("name", str(exc), 409) from None
        await audit(conn, session.actor, "console.tenant_created", {"name": name}, tenant_id=tenant.id)
        return tenant

    return await db.transaction(create)


async def new_key(db: Database, session: ConsoleSession, tenant: str, label: str) -> NewKey:
    """A new API key for `tenant` (shown once by the page that asked; only its hash stays)."""
    if len(label) > 200:
        raise ConsoleInputError("label", "at most 200 characters")

    async def create(conn: Connection) -> NewKey:
        await _tenant(conn, tenant)
        return await create_key(conn, tenant, label or None, actor=session.actor)

    return await db.transaction(create)


_KEY_PREFIX = re.compile(r"[0-9a-f]{8}")


async def end_key(db: Database, session: ConsoleSession, prefix: str) -> str:
    from deneva.tenants import TenantError

    if not _KEY_PREFIX.fullmatch(prefix):
        raise ConsoleInputError("prefix", f"expected a key prefix of 8 hex characters, got {_shown(prefix)}")
    try:
        return await db.transaction(lambda conn: revoke_key(conn, prefix, actor=session.actor))
    except TenantError as exc:
        raise ConsoleInputError("prefix", str(exc), 404) from None
