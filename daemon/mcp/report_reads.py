"""The report tools' cache reads, batched: concurrent calls share one round trip.

Each tool call needs the tenant's accounts on a platform (one when accountId is given),
each with its cache row for the report (payload as JSON text). `ReportReads` sends the
calls under way as one `deneva_tenant_reports` statement (migration 0004), which switches
to the tenant role and, before each call's query, to that call's tenant, so row-level
security scopes every query to its own tenant, as in a tenant_transaction.

Nothing waits to fill a batch: a call that finds fewer than `max_in_flight` batches
under way starts one at once (alone, when the daemon is quiet); the calls that arrive
while every slot is busy go together in the next one. The caller that starts a batch
runs it and hands the other callers their rows; if it is cancelled meanwhile, the
others' calls go back to the queue and the next of them runs it.

One call must not fail the others: when Postgres rejects a batch's statement (bad data in
one call's arguments, say, which the tools' validation should have refused), each of its
calls is sent again as a statement of its own (in one crossing, on one connection), so
only the call at fault gets the error. A batch that failed because the database is
unreachable is not sent again: every call would fail the same way.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

import trio

from deneva.db import Connection, Database, Record, translate_error
from deneva.errors import DatabaseUnavailable

BATCH_SQL = "SELECT * FROM deneva_tenant_reports($1, $2, $3, $4, $5, $6)"
MAX_BATCH = 64
MAX_IN_FLIGHT = 4


class _Call:
    __slots__ = ("args", "done", "error", "rows", "wake")

    def __init__(self, args: tuple[uuid.UUID, str, str, str, str | None]) -> None:
        self.args = args
        self.rows: list[Record] = []
        self.error: BaseException | None = None
        self.done = False
        self.wake = trio.Event()


class ReportReads:
    def __init__(
        self, db: Database, limit: int, *, max_batch: int = MAX_BATCH, max_in_flight: int = MAX_IN_FLIGHT
    ) -> None:
        self._db = db
        self._limit = limit
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[_Call] = deque()
        self._in_flight = 0
        self.batches = 0  # statements sent (for tests and the curious)
        self.fallbacks = 0  # failed batches sent again one call at a time

    async def read(
        self,
        tenant: uuid.UUID,
        platform: str,
        report_type: str,
        date_range: str,
        account_id: str | None,
    ) -> list[Record]:
        """The tenant's accounts on `platform` (`account_id` only, when given), each with its
        cache row for the report (payload as JSON text), at most `limit` of them."""
        call = _Call((tenant, platform, report_type, date_range, account_id))
        self._queue.append(call)
        try:
            while not call.done:
                if self._in_flight < self._max_in_flight and self._queue:
                    await self._run_batch()
                else:
                    call.wake = trio.Event()
                    await call.wake.wait()
        except BaseException:
            if not call.done:
                try:
                    self._queue.remove(call)
                except ValueError:
                    pass  # in a batch under way: its answer is dropped
            if self._queue and self._in_flight < self._max_in_flight:
                self._queue[0].wake.set()  # it may have been woken for this call's turn
            raise
        if call.error is not None:
            raise call.error
        return call.rows

    async def _run_batch(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
        self._in_flight += 1
        try:
            await self._answer(batch)
        except trio.Cancelled:
            # This caller is going: the others' calls wait for the next batch.
            self._queue.extendleft(reversed([call for call in batch if not call.done]))
            raise
        finally:
            self._in_flight -= 1
            for call in batch:
                if call.done:
                    call.wake.set()
            if self._queue:  # the next batch: its first caller runs it
                self._queue[0].wake.set()

    async def _answer(self, batch: list[_Call]) -> None:
        self.batches += 1
        try:
            rows = await self._db.fetch(BATCH_SQL, *_columns(batch), self._limit)
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, DatabaseUnavailable):
                for call in batch:
                    call.error, call.done = exc, True
                return
        else:
            for row in rows:
                batch[row["idx"] - 1].rows.append(row)
            for call in batch:
                call.done = True
            return
        await self._run_alone(batch)

    async def _run_alone(self, batch: list[_Call]) -> None:
        """Each call of a failed batch as a statement of its own, all in one crossing: each
        call gets its own rows or its own error."""
        self.fallbacks += 1
        self.batches += len(batch)
        limit = self._limit

        async def each(conn: Connection) -> list[list[Record] | BaseException]:
            answers: list[list[Record] | BaseException] = []
            for call in batch:
                try:
                    answers.append(await conn.fetch(BATCH_SQL, *_columns([call]), limit))
                except Exception as exc:
                    answers.append(translate_error(exc))
            return answers

        try:
            answers = await self._db.run(each)
        except Exception as exc:  # no connection for them: every call fails alike
            answers = [exc] * len(batch)
        for call, answer in zip(batch, answers, strict=True):
            if isinstance(answer, BaseException):
                call.error = answer
            else:
                call.rows = answer
            call.done = True


def _columns(batch: list[_Call]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*(call.args for call in batch), strict=True))
