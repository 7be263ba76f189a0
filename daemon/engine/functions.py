"""Functions are registered in code: an id, a handler, triggers and options (attrs).

    registry = Registry()

    @registry.function("sync-report", EventTrigger("report/sync.requested"),
                       concurrency=Concurrency(1, key="data.tenant_id, data.platform"),
                       retries=3)
    async def sync_report(ctx: Context) -> dict:
        rows = await ctx.step.run("fetch", fetch_rows)
        ...

Keys (concurrency, idempotency, rate limit, debounce, coalesce) are comma-separated paths into
the triggering event ("data.tenant_id, data.platform"); a path missing from an event
is a clear error on that event, never a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import attrs

from deneva.backoff import Backoff
from deneva.engine.context import Context
from deneva.engine.cron import CronError, CronSchedule, parse_cron
from deneva.engine.errors import EngineError, UnknownFunction
from deneva.engine.events import lookup, parse_path

__all__ = [
    "Backoff",
    "Concurrency",
    "CronTrigger",
    "Debounce",
    "EventTrigger",
    "Function",
    "Idempotency",
    "RateLimit",
    "Registry",
]

Handler = Callable[[Context], Awaitable[Any]]
FAILURE_EVENT = "deneva/function.failed"
INVOKE_EVENT = "deneva/function.invoked"
CRON_EVENT = "deneva/cron"


def _paths(text: str | None) -> tuple[tuple[str, ...], ...]:
    if text is None:
        return ()
    return tuple(parse_path(part.strip()) for part in text.split(","))


def key_of(paths: tuple[tuple[str, ...], ...], document: Mapping[str, Any], what: str) -> str:
    """Evaluate a key expression on an event document; EngineError names a missing field."""
    values = []
    for path in paths:
        try:
            value = lookup(document, path)
        except KeyError as missing:
            raise EngineError(
                f"{what}: event {document.get('name')!r} has no field {missing.args[0]!r}"
            ) from None
        values.append(value if isinstance(value, str) else repr(value))
    return ":".join(values)


def failure_document(function_id: str, run_id: str, error: str, event: Any, now: float) -> dict[str, Any]:
    """The event a failed run of `function_id` sends to its on_failure handler (once:
    its id is the run's)."""
    return {
        "name": FAILURE_EVENT,
        "data": {"function_id": function_id, "run_id": run_id, "error": error, "event": event},
        "id": f"failure-{run_id}",
        "ts": int(now * 1000),
    }


MAX_KEY_CHARS = 200  # a stored key's length (btree index rows hold at most ~2.7 KB)
_HASHED = "\x1f"  # marks a hashed key; a key holding it is hashed too, so none can pose as one


def stored_key(function_id: str, key: str) -> str:
    """The key as stored: `function_id|key`, or, when that is longer than MAX_KEY_CHARS
    (or holds the marker), its first 80 characters, the marker and the SHA-256 of the
    whole. Keys only compare equal, so a hash keeps their meaning; an event's field of
    any size can never make a key row too large for its index (migration 0006 applies
    the same form, in SQL, to keys stored before)."""
    full = f"{function_id}|{key}"
    if len(full) <= MAX_KEY_CHARS and _HASHED not in full:
        return full
    digest = hashlib.sha256(full.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{full[:80]}{_HASHED}{digest}"


# The parsed form of a class's `key` expression, computed once at construction.
_KEY_PATHS: Any = attrs.field(
    init=False, default=attrs.Factory(lambda self: _paths(self.key), takes_self=True)
)


@attrs.frozen
class Concurrency:
    """At most `limit` runs executing at once, per function or per key."""

    limit: int = attrs.field(validator=attrs.validators.ge(1))
    key: str | None = None
    paths: tuple[tuple[str, ...], ...] = _KEY_PATHS


@attrs.frozen
class Idempotency:
    """One run per key within the window (default 24 h)."""

    key: str
    window_s: float = 86_400.0
    paths: tuple[tuple[str, ...], ...] = _KEY_PATHS


@attrs.frozen
class RateLimit:
    """At most `limit` runs started per `period_s` (per key); further events are skipped."""

    limit: int = attrs.field(validator=attrs.validators.ge(1))
    period_s: float = attrs.field(validator=attrs.validators.gt(0))
    key: str | None = None
    paths: tuple[tuple[str, ...], ...] = _KEY_PATHS


@attrs.frozen
class Debounce:
    """Run once `period_s` after the last event of a burst (per key), with that event."""

    period_s: float = attrs.field(validator=attrs.validators.gt(0))
    key: str | None = None
    paths: tuple[tuple[str, ...], ...] = _KEY_PATHS


@attrs.frozen
class Coalesce:
    """At most one queued run per key: an event whose key has a run queued joins that run
    (which keeps its first event and due time). A run already executing is not joined: the
    next event queues one more, so work asked for while a run executes is done after it."""

    key: str
    paths: tuple[tuple[str, ...], ...] = _KEY_PATHS


@attrs.frozen
class EventTrigger:
    """Runs on events called `name` whose fields equal `match` ({"data.platform": "google"})."""

    name: str
    match: Mapping[str, Any] | None = None
    match_paths: tuple[tuple[tuple[str, ...], Any], ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        pairs = tuple((parse_path(k), v) for k, v in (self.match or {}).items())
        object.__setattr__(self, "match_paths", pairs)

    def matches(self, document: Mapping[str, Any]) -> bool:
        for path, expected in self.match_paths:
            try:
                if lookup(document, path) != expected:
                    return False
            except KeyError:
                return False
        return True


MissedTicks = Literal["once", "all", "skip"]


@attrs.frozen
class CronTrigger:
    """Runs on a cron schedule (with timezone). After downtime: `missed` ticks fire once
    (default: only the latest missed tick), all (up to 100), or are skipped."""

    expression: str
    timezone: str | None = None
    missed: MissedTicks = "once"
    schedule: CronSchedule = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if self.missed not in ("once", "all", "skip"):
            raise EngineError(f"cron {self.expression!r}: missed must be once, all or skip")
        try:
            object.__setattr__(self, "schedule", parse_cron(self.expression, self.timezone))
        except CronError as exc:
            raise EngineError(str(exc)) from None


Trigger = EventTrigger | CronTrigger


@attrs.frozen
class Function:
    id: str
    handler: Handler
    triggers: tuple[Trigger, ...] = ()
    retries: int = attrs.field(
        default=3, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(100))
    )
    backoff: Backoff = attrs.field(factory=Backoff)
    timeout_s: float | None = None
    concurrency: Concurrency | None = None
    idempotency: Idempotency | None = None
    rate_limit: RateLimit | None = None
    debounce: Debounce | None = None
    coalesce: Coalesce | None = None
    priority: int = 0
    on_failure: Handler | None = None

    def __attrs_post_init__(self) -> None:
        if self.debounce is not None and self.coalesce is not None:
            raise EngineError(
                f"function {self.id!r}: debounce and coalesce are two ways to merge events; pick one"
            )

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    @property
    def failure_handler_id(self) -> str:
        return f"{self.id}/on-failure"

    def event_triggers(self) -> list[EventTrigger]:
        return [t for t in self.triggers if isinstance(t, EventTrigger)]

    def cron_triggers(self) -> list[CronTrigger]:
        return [t for t in self.triggers if isinstance(t, CronTrigger)]


class Registry:
    """The functions this process can run; the same code runs on every replica."""

    def __init__(self) -> None:
        self._functions: dict[str, Function] = {}
        self._by_event: dict[str, list[tuple[Function, EventTrigger]]] = {}
        self.has_concurrency_limits = False

    def add(self, function: Function) -> Function:
        if function.id in self._functions:
            raise EngineError(f"function {function.id!r} is registered twice")
        if not function.id or len(function.id) > 100:
            raise EngineError(f"function id {function.id!r}: expected 1-100 characters")
        self._functions[function.id] = function
        self.has_concurrency_limits |= function.concurrency is not None
        for trigger in function.event_triggers():
            self._by_event.setdefault(trigger.name, []).append((function, trigger))
        if function.on_failure is not None:
            failure = Function(
                function.failure_handler_id,
                function.on_failure,
                (EventTrigger(FAILURE_EVENT, {"data.function_id": function.id}),),
                retries=function.retries,
                backoff=function.backoff,
            )
            self.add(failure)
        return function

    def function(self, function_id: str, *triggers: Trigger, **options: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add(Function(function_id, handler, tuple(triggers), **options))
            return handler

        return register

    def get(self, function_id: str) -> Function:
        try:
            return self._functions[function_id]
        except KeyError:
            known = ", ".join(sorted(self._functions)[:20])
            raise UnknownFunction(f"unknown function {function_id!r} (known: {known})") from None

    def has_failure_handler(self, function_id: str) -> bool:
        function = self._functions.get(function_id)
        return function is not None and function.on_failure is not None

    def triggered_by(self, name: str) -> list[tuple[Function, EventTrigger]]:
        return self._by_event.get(name, [])

    def all(self) -> list[Function]:
        return sorted(self._functions.values(), key=lambda f: f.id)

    def crons(self) -> list[tuple[Function, CronTrigger]]:
        return [(f, t) for f in self.all() for t in f.cron_triggers()]

    def __contains__(self, function_id: object) -> bool:
        return function_id in self._functions
