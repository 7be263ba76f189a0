"""The one clock. Everything that schedules reads wall time from here.

`SystemClock` follows the real wall clock, plus `offset_s` (the `clock_offset_s` key,
refused in production: the chaos suite's replica whose clock runs ahead). `TrioClock`
derives wall time from trio's clock, so under `trio.testing.MockClock` a test runs a day
of schedules in seconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

import trio


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Sleep until wall time `when` (returns at once if it has passed)."""
        ...


def as_datetime(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class SystemClock:
    # Long sleeps re-check the wall clock so a stepped system clock is noticed.
    _max_nap = 60.0

    def __init__(self, offset_s: float = 0.0) -> None:
        self.offset_s = offset_s

    def now(self) -> float:
        return time.time() + self.offset_s

    async def sleep_until(self, when: float) -> None:
        while (left := when - self.now()) > 0:
            await trio.sleep(min(left, self._max_nap))


class TrioClock:
    """Wall time = `epoch` + trio.current_time(): virtual under MockClock."""

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def now(self) -> float:
        return self.epoch + trio.current_time()

    async def sleep_until(self, when: float) -> None:
        await trio.sleep_until(max(when - self.epoch, trio.current_time()))
