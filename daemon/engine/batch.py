"""Group commit: many tasks submit items (one, or a group at a time), one loop writes
them in one crossing.

Under load, items that arrive while a batch is being written form the next batch;
when idle, an item is written at once (no added delay).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import outcome
import trio

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        name: str,
        flush: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        max_batch: int = 1000,
    ) -> None:
        self.name = name
        self._flush = flush
        self._max_batch = max_batch
        # Groups of items waiting, each with the box its results go in and its wake-up.
        self._pending: list[tuple[Sequence[Item], list[Any], trio.Event]] = []
        self._wake = trio.Event()
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        return (await self.submit_many((item,)))[0]

    async def submit_many(self, items: Sequence[Item]) -> list[Result]:
        """Write `items` in a batch (with whatever else is waiting); their results, in order."""
        box: list[Any] = []
        done = trio.Event()
        self._pending.append((items, box, done))
        self._wake.set()
        await done.wait()
        results: list[Result] = box[0].unwrap()
        return results

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            while not self._pending:
                await self._wake.wait()
                self._wake = trio.Event()
            await self.flush_pending()

    async def flush_pending(self) -> None:
        """Write the groups waiting, whole, up to `max_batch` items (at least one group)."""
        pending, taken = self._pending, 0
        count = 0
        while taken < len(pending) and (taken == 0 or count + len(pending[taken][0]) <= self._max_batch):
            count += len(pending[taken][0])
            taken += 1
        batch, self._pending = pending[:taken], pending[taken:]
        if not batch:
            return
        try:
            items = [item for group, _, _ in batch for item in group]
            results = list(await self._flush(items))
            if len(results) != len(items):
                raise RuntimeError(f"{self.name} writer: {len(results)} results for {len(items)} items")
            offset = 0
            for group, box, done in batch:
                box.append(outcome.Value(results[offset : offset + len(group)]))
                offset += len(group)
                done.set()
        except BaseException as exc:
            # Never hand a trio.Cancelled to another task: they get a plain error instead.
            error = exc if isinstance(exc, Exception) else RuntimeError(f"{self.name} writer stopped")
            for _, box, done in batch:
                if not done.is_set():
                    box.append(outcome.Error(error))
                    done.set()
            if not isinstance(exc, Exception):
                raise
        self.batches += 1
        self.items += count
