"""Group commit: many tasks submit items, one loop writes them in one crossing.

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
        self._pending: list[tuple[Item, list[Any], trio.Event]] = []
        self._wake = trio.Event()
        self.batches = 0
        self.items = 0

    async def submit(self, item: Item) -> Result:
        box: list[Any] = []
        done = trio.Event()
        self._pending.append((item, box, done))
        self._wake.set()
        await done.wait()
        result: Result = box[0].unwrap()
        return result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            while not self._pending:
                await self._wake.wait()
                self._wake = trio.Event()
            await self.flush_pending()

    async def flush_pending(self) -> None:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if not batch:
            return
        try:
            results = await self._flush([item for item, _, _ in batch])
            for (_, box, done), result in zip(batch, results, strict=True):
                box.append(outcome.Value(result))
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
        self.items += len(batch)
