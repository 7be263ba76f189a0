"""Execute one claimed run: replay the function with its recorded steps, and turn how it
ended into a Transition (succeeded, retry, failed, sleeping, waiting, ...).

A failed attempt keeps its error and a bounded copy of its traceback on the Transition,
so the run record, the log line and the metrics all come from this one place.
"""

from __future__ import annotations

import random
import traceback
from typing import Any

import attrs
import trio

from deneva.clock import Clock
from deneva.engine.context import Context, LeaseLost, RunCancelled, Step, StepJournal, Suspend, json_value
from deneva.engine.errors import NonRetriableError, RetryAfterError
from deneva.engine.functions import Function, failure_document
from deneva.engine.model import ClaimedRun, Transition

MAX_ERROR_CHARS = 2000
MAX_TRACEBACK_CHARS = 8000


@attrs.frozen
class Execution:
    """How one execution ended: the transition to write (None: the lease was lost, write
    nothing) and the exception behind a failure, for the log."""

    transition: Transition | None
    error: BaseException | None = None


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def format_traceback(exc: BaseException) -> str:
    """The traceback, its last MAX_TRACEBACK_CHARS characters (where the error is)."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-MAX_TRACEBACK_CHARS:]
    return text


def _failed(
    run: ClaimedRun, function: Function | None, error: str, now: float, trace: str | None = None
) -> Transition:
    failure_event: dict[str, Any] | None = None
    if function is not None and function.on_failure is not None:
        failure_event = failure_document(function.id, str(run.id), error, run.event, now)
    return Transition(
        run.id, "failed", error=error, finished_at=now, failure_event=failure_event, traceback=trace
    )


def unknown_function(run: ClaimedRun, error: str, now: float) -> Transition:
    """A run of a function this process does not have: it fails, with the reason."""
    return _failed(run, None, error, now)


async def execute(
    run: ClaimedRun, function: Function, journal: StepJournal, clock: Clock, rng: random.Random
) -> Execution:
    """Run the function once (an attempt, or the continuation of one); a run that could
    not be claimed properly (`poisoned`) fails without running, and is not retried."""
    if run.poisoned is not None:
        return Execution(_failed(run, function, run.poisoned, clock.now()))
    step = Step(journal, run, clock)
    ctx = Context(run.event, step, run.id, run.function_id, run.attempt, run.max_attempts)
    try:
        if function.timeout_s is not None:
            with trio.fail_after(function.timeout_s):
                result = await function.handler(ctx)
        else:
            result = await function.handler(ctx)
        output = json_value(result, f"function {function.id!r}")
        return Execution(Transition(run.id, "succeeded", output=output, finished_at=clock.now()))
    except Suspend as suspend:
        return Execution(suspend.transition)
    except RunCancelled:
        return Execution(Transition(run.id, "cancelled", error="cancelled", finished_at=clock.now()))
    except LeaseLost as exc:
        return Execution(None, exc)
    except NonRetriableError as exc:
        return Execution(_failed(run, function, describe(exc), clock.now(), format_traceback(exc)), exc)
    except RetryAfterError as exc:
        at = clock.now() + exc.delay_s
        return Execution(_retry_or_fail(run, function, exc, describe(exc), at, clock, rng), exc)
    except trio.TooSlowError as exc:
        error = f"timed out after {function.timeout_s} s"
        return Execution(_retry_or_fail(run, function, exc, error, None, clock, rng), exc)
    except Exception as exc:
        return Execution(_retry_or_fail(run, function, exc, describe(exc), None, clock, rng), exc)


def _retry_or_fail(
    run: ClaimedRun,
    function: Function,
    exc: BaseException,
    error: str,
    at: float | None,
    clock: Clock,
    rng: random.Random,
) -> Transition:
    trace = format_traceback(exc)
    if run.attempt >= run.max_attempts:
        return _failed(run, function, error, clock.now(), trace)
    if at is None:
        at = clock.now() + function.backoff.delay(run.attempt, rng)
    return Transition(run.id, "queued", run_at=at, error=error, traceback=trace)
