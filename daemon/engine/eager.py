"""Eager starts: run a coroutine in the current trio task until it first suspends.

A function that returns without waiting for anything (no checkpoint, no I/O) finishes
inside `start`, at the cost of a call: no task is spawned for it and no scheduler pass
is spent on it. One that does suspend comes back as `Suspended`, to be awaited in the
same task (what it already registered while starting, a parking lot or a cancel scope,
names that task): awaiting it runs it on to its end there. The caller awaits it before
entering or leaving any cancel scope of its own (the scopes the coroutine entered sit
inside the caller's: trio checks that they are left in order).

Each coroutine runs in a copy of the current context, as a task of its own would, so
what one sets in a context variable is not seen by the next.
"""

from __future__ import annotations

import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

import outcome

T = TypeVar("T")


class Suspended(Generic[T]):
    """A coroutine that suspended while starting; await it (once, in the task that
    started it) for its result."""

    __slots__ = ("_context", "_coro", "_trap")

    def __init__(self, coro: Coroutine[Any, Any, T], context: contextvars.Context, trap: Any) -> None:
        self._coro = coro
        self._context = context
        self._trap = trap

    def __await__(self) -> Generator[Any, Any, T]:
        # What `yield from` does, for a coroutine that already took its first step: each
        # trap goes on to trio, and what trio sends back (or throws in) goes to it.
        coro, run, trap = self._coro, self._context.run, self._trap
        self._trap = None
        while True:
            try:
                sent = yield trap
            except BaseException as exc:
                try:
                    trap = run(coro.throw, exc)
                except StopIteration as stop:
                    result: T = stop.value
                    return result
            else:
                try:
                    trap = run(coro.send, sent)
                except StopIteration as stop:
                    result = stop.value
                    return result


def start(coro: Coroutine[Any, Any, T]) -> outcome.Outcome[T] | Suspended[T]:
    """Run `coro` until it returns, raises or suspends: its outcome, or what to await."""
    context = contextvars.copy_context()
    try:
        trap = context.run(coro.send, None)
    except StopIteration as stop:
        return outcome.Value(stop.value)
    except BaseException as exc:
        return outcome.Error(exc)
    return Suspended(coro, context, trap)
