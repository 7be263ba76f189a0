"""Values that travel between the engine's parts (attrs, frozen)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import attrs

RunStatus = Literal["queued", "running", "sleeping", "waiting", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = ("queued", "running", "sleeping", "waiting", "succeeded", "failed", "cancelled")
UNFINISHED: tuple[str, ...] = ("queued", "running", "sleeping", "waiting")
FINISHED: tuple[str, ...] = ("succeeded", "failed", "cancelled")
RETRYABLE: tuple[str, ...] = ("failed", "cancelled")
FOREVER = datetime(9999, 12, 31, tzinfo=UTC)
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)


def ts(value: float | None) -> datetime:
    return FOREVER if value is None else datetime.fromtimestamp(value, UTC)


def new_run_id() -> uuid.UUID:
    return uuid.uuid4()


@attrs.frozen
class NewRun:
    id: uuid.UUID
    function_id: str
    event: dict[str, Any]
    max_attempts: int
    priority: int
    run_at: float
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    idempotency_key: str | None = None
    idempotency_until: float | None = None
    debounce_key: str | None = None
    rate_key: str | None = None
    rate_limit: int = 0
    rate_window_start: float = 0.0
    coalesce: bool = False  # debounce_key coalesces into a queued run rather than debouncing


@attrs.frozen
class ClaimedRun:
    id: uuid.UUID
    function_id: str
    event: dict[str, Any]
    attempt: int
    max_attempts: int
    created_at: float
    steps: dict[str, Any]
    resumed_from: str = "queued"  # the status it was claimed from
    poisoned: str | None = None  # why it could not be claimed properly: it fails at once
    lease: uuid.UUID | None = None  # this claim's lease token (fences every write for the run)


@attrs.frozen
class WaitSpec:
    step_id: str
    event_name: str
    match_path: tuple[str, ...] | None
    match_value: Any
    expires_at: float | None


@attrs.frozen
class Transition:
    """What one execution of a run ends in; written in batches."""

    run_id: uuid.UUID
    status: RunStatus
    run_at: float | None = None  # when to claim it again (queued, sleeping, waiting)
    output: Any = None
    error: str | None = None
    finished_at: float | None = None
    step: tuple[str, Any] | None = None  # a step row to record with it (sleep)
    wait: WaitSpec | None = None
    failure_event: dict[str, Any] | None = None  # on_failure trigger, sent once
    traceback: str | None = None  # a failed attempt's (bounded) traceback


@attrs.frozen
class SendResult:
    event_ids: tuple[str, ...]
    new_event_ids: tuple[str, ...]
    run_ids: tuple[uuid.UUID, ...]
    errors: tuple[str, ...] = ()
    resumed_run_ids: tuple[uuid.UUID, ...] = ()  # waiting runs these events resolved
    duplicate: bool = False  # the delivery was stored before: nothing was stored now


@attrs.frozen
class Delivery:
    """An inbound delivery that carries events (a webhook): stored once per (source, id),
    in the same transaction as its events, so a retry or replay stores nothing twice."""

    source: str
    id: str


@attrs.frozen
class RunRecord:
    id: uuid.UUID
    function_id: str
    status: str
    attempt: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime
    last_error: str | None
    output: Any
    event: dict[str, Any]
    last_traceback: str | None = None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    def as_json(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None or value == FOREVER else value.isoformat()

        return {
            "id": str(self.id),
            "function": self.function_id,
            "status": self.status,
            "attempt": self.attempt,
            "maxAttempts": self.max_attempts,
            "createdAt": iso(self.created_at),
            "startedAt": iso(self.started_at),
            "finishedAt": iso(self.finished_at),
            "durationMs": self.duration_ms,
            "nextAttemptAt": iso(self.run_at) if self.status in ("queued", "sleeping", "waiting") else None,
            "lastError": self.last_error,
            "lastTraceback": self.last_traceback,
            "output": self.output,
            "event": self.event,
        }


@attrs.frozen
class StepRecord:
    step_id: str
    output: Any
    completed_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.step_id, "output": self.output, "completedAt": self.completed_at.isoformat()}


@attrs.frozen
class PauseRecord:
    """A paused function (`function_id` "*": the whole engine)."""

    function_id: str
    paused_at: datetime
    paused_by: str | None


@attrs.frozen
class QueueStats:
    """What /metrics reports of the queue: due runs waiting, the oldest one's age (lag),
    and the runs not finished per status."""

    due: int
    oldest_due_age_s: float | None
    by_status: dict[str, int]


def _as_statuses(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _known_statuses(_instance: Any, _attribute: Any, value: tuple[str, ...]) -> None:
    if not value or any(s not in STATUSES for s in value):
        raise ValueError(f"statuses: expected some of {', '.join(STATUSES)}, got {value!r}")


@attrs.frozen
class RunFilter:
    """Which runs an operator means (`Engine.find_runs`, `retry_matching`, `cancel_matching`):
    some statuses, one function, runs whose event data contains `data` (e.g. a tenant's
    id), and a window [since, until) of the run's time: when it finished, or, while it is
    not finished, when it was created (None: unbounded)."""

    statuses: tuple[str, ...] = attrs.field(
        default=STATUSES, converter=_as_statuses, validator=_known_statuses
    )
    function_id: str | None = None
    data: Mapping[str, Any] | None = None
    since: float | None = None
    until: float | None = None

    def args(self) -> tuple[Any, ...]:
        """The filter's query parameters ($1..$5 of engine_find_runs and its kin)."""
        return (
            list(self.statuses),
            self.function_id,
            None if self.data is None else dict(self.data),
            FAR_PAST if self.since is None else ts(self.since),
            FOREVER if self.until is None else ts(self.until),
        )


@attrs.frozen
class RunCursor:
    """Where a page of `find_runs` ends: its last run's time and id (keyset pagination)."""

    at: datetime
    run_id: uuid.UUID

    @classmethod
    def after(cls, record: RunRecord) -> RunCursor:
        return cls(record.finished_at or record.created_at, record.id)


@attrs.frozen
class FinishedBucket:
    """Runs that finished in one bucket of time (`Engine.finished_per_bucket`)."""

    start: float  # seconds since the epoch
    succeeded: int
    failed: int
    cancelled: int


@attrs.frozen
class CancelledRuns:
    """What `cancel_matching` did: runs cancelled at once, and running ones asked to stop."""

    cancelled: tuple[uuid.UUID, ...]
    cancelling: tuple[uuid.UUID, ...]
