"""What a function sees while it runs: the event, and `step` for durable steps.

Steps are memoised by id: on a retry, after a crash or when a sleeping or waiting
run resumes, the function runs again from the top and every step that completed
returns its recorded result without running again.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from deneva.clock import Clock
from deneva.engine.errors import EngineError, NonRetriableError
from deneva.engine.events import lookup, parse_path, unstorable_text
from deneva.engine.model import ClaimedRun, Transition, WaitSpec


class StepJournal(Protocol):
    """Where steps are recorded (the engine): what a Step needs and nothing more."""

    async def record_step(self, run_id: uuid.UUID, step_id: str, value: Any) -> None: ...

    async def send_as_step(
        self, run_id: uuid.UUID, step_id: str, raw: list[Mapping[str, Any]]
    ) -> SentEvents: ...

    async def is_paused(self, function_id: str) -> bool: ...

    async def resolve_wait_timeout(self, run_id: uuid.UUID, step_id: str) -> dict[str, Any] | None: ...

    def step_finished(self, function_id: str, step_id: str, seconds: float) -> None: ...


@attrs.frozen
class SentEvents:
    """What `step.send_event` sent: every event's id, and why events that should have
    started a run did not (a key field missing from the event, say)."""

    ids: tuple[str, ...]
    errors: tuple[str, ...] = ()

    @classmethod
    def from_memo(cls, memo: Any) -> SentEvents:
        if isinstance(memo, list):  # recorded before errors were recorded with the ids
            return cls(tuple(memo))
        memo = memo or {}
        return cls(tuple(memo.get("ids") or ()), tuple(memo.get("errors") or ()))

    def memo(self) -> dict[str, Any]:
        return {"ids": list(self.ids), "errors": list(self.errors)}


class Suspend(BaseException):
    """Unwinds a function that sleeps or waits; the worker records the transition."""

    def __init__(self, transition: Transition) -> None:
        self.transition = transition


class RunCancelled(BaseException):
    """Cancellation was requested; the run stops at this step boundary."""


class LeaseLost(BaseException):
    """Another worker owns the run now (our lease expired); stop without writing."""


_BIG_INT = 2**63  # an int's JSON text stays short below this (Python's limit is 4,300 digits)


def json_value(value: Any, what: str) -> Any:
    """`value` as plain JSON (what is recorded); NonRetriableError when it is not JSON."""
    # The commonest results are their own JSON and storable: no round trip for them (an
    # exact type only: an IntEnum comes back a plain int; no float: NaN is not JSON).
    kind = type(value)
    if (
        value is None
        or kind is bool
        or (kind is int and -_BIG_INT < value < _BIG_INT)
        or (kind is str and value.isascii() and "\x00" not in value)
    ):
        return value
    try:
        text = json.dumps(value)
        plain = json.loads(text)
    except (TypeError, ValueError, RecursionError) as exc:
        raise NonRetriableError(f"{what}: result is not JSON-serialisable ({exc})") from None
    # What Postgres cannot store (NUL, a lone surrogate) shows as an escape in the text;
    # only then is the value walked, to name the string.
    if "\\u0000" in text or "\\ud" in text:
        problem = unstorable_text(plain, "result")
        if problem is not None:
            raise NonRetriableError(f"{what}: {problem}")
    return plain


@attrs.define
class Step:
    _journal: StepJournal
    _run: ClaimedRun
    _clock: Clock
    _seen: set[str] = attrs.Factory(set)
    executed: list[str] = attrs.Factory(list)  # steps that really ran in this execution
    # Claimed because its wait timed out: the first unrecorded wait is that one.
    _wait_timed_out: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._wait_timed_out = self._run.resumed_from == "waiting"

    def _claim_id(self, step_id: str) -> None:
        if not isinstance(step_id, str) or not step_id or len(step_id) > 200:
            raise NonRetriableError(f"step id {step_id!r}: expected 1-200 characters")
        if step_id in self._seen:
            raise NonRetriableError(f"step id {step_id!r} used twice in one run")
        self._seen.add(step_id)

    async def run(self, step_id: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` once; its (JSON) result is recorded and returned on replays."""
        self._claim_id(step_id)
        memo = self._run.steps.get(step_id)
        if memo is not None:
            return memo.get("value")
        began = time.perf_counter()
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        self._journal.step_finished(self._run.function_id, step_id, time.perf_counter() - began)
        value = json_value(result, f"step {step_id!r}")
        await self._journal.record_step(self._run.id, step_id, value)
        self.executed.append(step_id)
        return value

    async def send_event(
        self, step_id: str, events: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> SentEvents:
        """Send events (fan-out) exactly once for this step; their ids, and why any of them
        started nothing it should have."""
        self._claim_id(step_id)
        memo = self._run.steps.get(step_id)
        if memo is not None:
            return SentEvents.from_memo(memo.get("value"))
        batch = [events] if isinstance(events, Mapping) else list(events)
        sent = await self._journal.send_as_step(self._run.id, step_id, batch)
        self.executed.append(step_id)
        return sent

    async def paused(self, function_id: str) -> bool:
        """Whether `function_id` (or the whole engine) is paused now: a fan-out skips
        enqueueing work that would only wait (not a step: asked again on a replay)."""
        return await self._journal.is_paused(function_id)

    async def sleep(self, step_id: str, duration_s: float) -> None:
        """Sleep durably: the run holds no worker slot and survives restarts."""
        self._claim_id(step_id)
        if step_id in self._run.steps:
            return
        until = self._clock.now() + max(0.0, float(duration_s))
        raise Suspend(
            Transition(self._run.id, "sleeping", run_at=until, step=(step_id, {"sleep_until": until}))
        )

    async def sleep_until(self, step_id: str, when: float) -> None:
        self._claim_id(step_id)
        if step_id in self._run.steps:
            return
        raise Suspend(
            Transition(self._run.id, "sleeping", run_at=when, step=(step_id, {"sleep_until": when}))
        )

    async def wait_for_event(
        self,
        step_id: str,
        *,
        event: str,
        match: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any] | None:
        """Wait for an event named `event`; with `match="data.user_id"`, one whose field
        equals the triggering event's. Returns the event document, or None on timeout.
        An event that arrived after this run started, before the wait, is found too."""
        self._claim_id(step_id)
        memo = self._run.steps.get(step_id)
        if memo is not None:
            found: dict[str, Any] | None = memo.get("event")
            return found
        if self._wait_timed_out:
            self._wait_timed_out = False
            stored = await self._journal.resolve_wait_timeout(self._run.id, step_id)
            return None if stored is None else stored.get("event")
        path: tuple[str, ...] | None = None
        value: Any = None
        if match is not None:
            try:
                path = parse_path(match)
                value = lookup(self._run.event, path)
            except (ValueError, KeyError) as exc:
                raise NonRetriableError(
                    f"wait_for_event {step_id!r}: match {match!r} is not a field "
                    f"of the triggering event ({exc})"
                ) from None
        expires = None if timeout_s is None else self._clock.now() + max(0.0, float(timeout_s))
        raise Suspend(
            Transition(
                self._run.id, "waiting", run_at=expires, wait=WaitSpec(step_id, event, path, value, expires)
            )
        )


@attrs.define
class Context:
    event: dict[str, Any]
    step: Step
    run_id: uuid.UUID
    function_id: str
    attempt: int
    max_attempts: int = 1

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.event.get("data") or {}
        return data


def ensure_handler(fn: Callable[..., Awaitable[Any]]) -> None:
    if not inspect.iscoroutinefunction(fn):
        raise EngineError(f"{getattr(fn, '__name__', fn)!r}: a function handler must be `async def`")
