"""Virtual time for simulations: real time while work is under way, a jump over idle time.

`SkipIdleClock` is a trio clock (`trio.run(..., clock=SkipIdleClock())`). While any task
can run, a database call is in flight (`AsyncioThread.in_flight`) or the simulation says
it is waiting on something outside trio (`busy()`, e.g. a platform call to another
process), virtual time runs at the rate of the real monotonic clock, so work takes the
time it really takes. When nothing can happen before the next timer, the clock jumps to
that timer at once: an idle minute costs nothing.

trio asks a clock how long to sleep only when no task is runnable (its run loop), so
"nothing can happen" is: no runnable task, no database call, no platform call. The jumps
are published in a `ClockFile` (two numbers in a memory-mapped file), so another process
can follow the same virtual wall clock.
"""

from __future__ import annotations

import math
import mmap
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from deneva.db import AsyncioThread

MAX_SLEEP_S = 86_400.0
_LAYOUT = struct.Struct("dd")  # base (virtual wall time minus the monotonic clock), jumped


class ClockFile:
    """A virtual wall clock shared between processes: `base + time.monotonic() + jumped`.

    The monotonic clock is the system's, the same in every process; the file holds the
    two numbers. Only the simulation writes (when it jumps, which it does only while no
    platform call is in flight), so a reader never sees it move in the middle of a call.
    """

    def __init__(self, path: Path, *, create: bool = False) -> None:
        if create:
            path.write_bytes(bytes(_LAYOUT.size))
        self.path = path
        with path.open("r+b") as handle:
            self._map = mmap.mmap(handle.fileno(), _LAYOUT.size)

    def publish(self, base: float, jumped: float) -> None:
        _LAYOUT.pack_into(self._map, 0, base, jumped)

    def now(self) -> float:
        base, jumped = _LAYOUT.unpack_from(self._map, 0)
        return float(base + time.monotonic() + jumped)

    def close(self) -> None:
        self._map.close()


class SkipIdleClock(trio.abc.Clock):
    def __init__(self, shared: ClockFile | None = None) -> None:
        self._mono0 = time.monotonic()
        self._base = 0.0
        self.jumped = 0.0
        self.jumps = 0
        self.waiting = 0  # things in flight outside trio and the database bridge
        self.shared = shared

    # -- trio.abc.Clock

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.monotonic() - self._mono0 + self.jumped

    def deadline_to_sleep_time(self, deadline: float) -> float:
        now = self.current_time()
        if deadline <= now:
            return 0.0
        if math.isinf(deadline):
            return MAX_SLEEP_S
        if self.waiting == 0 and AsyncioThread.in_flight == 0:
            self.jumped += deadline - now
            self.jumps += 1
            if self.shared is not None:
                self.shared.publish(self._base, self.jumped)
            return 0.0
        return deadline - now

    # -- the simulation's side

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Hold virtual time to the real clock while the block waits on something outside trio."""
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

    def anchor(self, wall_epoch: float) -> None:
        """Publish where the virtual wall clock is: `wall_epoch + trio.current_time()`."""
        self._base = wall_epoch - self._mono0
        if self.shared is not None:
            self.shared.publish(self._base, self.jumped)
