"""Eager starts: a coroutine runs in the calling task until it returns or suspends."""

from __future__ import annotations

import contextvars

import pytest
import trio
import trio.testing

from deneva.engine import eager

FLAVOUR: contextvars.ContextVar[str] = contextvars.ContextVar("flavour", default="plain")


async def test_a_coroutine_that_never_suspends_finishes_inside_start() -> None:
    steps: list[str] = []

    async def quick() -> int:
        steps.append("ran")
        return 7

    started = eager.start(quick())
    assert steps == ["ran"]  # before anything was awaited
    assert not isinstance(started, eager.Suspended) and started.unwrap() == 7


async def test_an_exception_comes_back_in_the_outcome() -> None:
    async def broken() -> None:
        raise ValueError("no")

    started = eager.start(broken())
    assert not isinstance(started, eager.Suspended)
    with pytest.raises(ValueError, match="no"):
        started.unwrap()


async def test_a_coroutine_that_suspends_goes_on_when_awaited_in_the_same_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    event = trio.Event()
    steps: list[str] = []

    async def waits() -> str:
        steps.append("started")
        with trio.fail_after(60):  # a cancel scope entered before it suspends
            await event.wait()
        await trio.sleep(1)
        steps.append("woke")
        return "done"

    async def wake() -> None:
        event.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wake)  # runs once this task waits
        started = eager.start(waits())
        assert isinstance(started, eager.Suspended) and steps == ["started"]
        assert await started == "done"
    assert steps == ["started", "woke"]


async def test_a_suspended_coroutine_is_cancelled_by_the_scope_it_is_awaited_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stopped: list[str] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        finally:
            stopped.append("stopped")

    with trio.CancelScope() as scope:
        started = eager.start(forever())
        assert isinstance(started, eager.Suspended)
        scope.deadline = trio.current_time() + 5
        await started
    assert scope.cancelled_caught and stopped == ["stopped"]


async def test_each_coroutine_sees_its_own_copy_of_the_context() -> None:
    async def sets(flavour: str) -> str:
        FLAVOUR.set(flavour)
        return FLAVOUR.get()

    async def reads() -> str:
        return FLAVOUR.get()

    first = eager.start(sets("lemon"))
    second = eager.start(reads())
    assert not isinstance(first, eager.Suspended) and first.unwrap() == "lemon"
    assert not isinstance(second, eager.Suspended) and second.unwrap() == "plain"
    assert FLAVOUR.get() == "plain"  # the caller's context is untouched
