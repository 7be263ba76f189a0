"""Execute one claimed run: replay the function with its recorded steps, and turn
how it ended into a Transition (succeeded, retry, failed, sleeping, waiting, ...)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from deneva.engine.context import Context, LeaseLost, RunCancelled, Step, Suspend, _json_safe
from deneva.engine.errors import NonRetriableError, RetryAfterError, UnknownFunction
from deneva.engine.functions import FAILURE_EVENT, Function
from deneva.engine.model import ClaimedRun, Transition

if TYPE_CHECKING:
    from deneva.engine.engine import Engine

log = logging.getLogger("deneva.engine.run")
MAX_ERROR_CHARS = 2000


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


def _failed(engine: Engine, run: ClaimedRun, function: Function | None, error: str) -> Transition:
    now = engine.clock.now()
    failure_event: dict[str, Any] | None = None
    if function is not None and function.on_failure is not None:
        failure_event = {
            "name": FAILURE_EVENT,
            "data": {"function_id": function.id, "run_id": str(run.id), "error": error, "event": run.event},
            "id": f"failure-{run.id}",
            "ts": int(now * 1000),
        }
    return Transition(run.id, "failed", error=error, finished_at=now, failure_event=failure_event)


async def execute(engine: Engine, run: ClaimedRun) -> Transition | None:
    """Run the function once (an attempt, or the continuation of one). None: lease lost."""
    try:
        function = engine.registry.get(run.function_id)
    except UnknownFunction as exc:
        return _failed(engine, run, None, str(exc))
    step = Step(engine, run, engine.clock)
    ctx = Context(run.event, step, run.id, run.function_id, run.attempt, run.max_attempts)
    try:
        if function.timeout_s is not None:
            with trio.fail_after(function.timeout_s):
                result = await function.handler(ctx)
        else:
            result = await function.handler(ctx)
        output = _json_safe(result, f"function {function.id!r}")
        return Transition(run.id, "succeeded", output=output, finished_at=engine.clock.now())
    except Suspend as suspend:
        return suspend.transition
    except RunCancelled:
        return Transition(run.id, "cancelled", error="cancelled", finished_at=engine.clock.now())
    except LeaseLost:
        log.warning("lease lost; another worker owns the run", extra={"run_id": str(run.id)})
        return None
    except NonRetriableError as exc:
        return _failed(engine, run, function, _describe(exc))
    except RetryAfterError as exc:
        return _retry_or_fail(engine, run, function, _describe(exc), engine.clock.now() + exc.delay_s)
    except trio.TooSlowError:
        error = f"timed out after {function.timeout_s} s"
        return _retry_or_fail(engine, run, function, error, None)
    except Exception as exc:
        return _retry_or_fail(engine, run, function, _describe(exc), None)


def _retry_or_fail(
    engine: Engine, run: ClaimedRun, function: Function, error: str, at: float | None
) -> Transition:
    if run.attempt >= run.max_attempts:
        log.warning(
            "run failed after its last attempt",
            extra={"run_id": str(run.id), "function": function.id, "attempt": run.attempt, "error": error},
        )
        return _failed(engine, run, function, error)
    if at is None:
        at = engine.clock.now() + function.backoff.delay(run.attempt, engine.rng)
    log.info(
        "attempt failed; will retry",
        extra={"run_id": str(run.id), "function": function.id, "attempt": run.attempt, "error": error},
    )
    return Transition(run.id, "queued", run_at=at, error=error)
