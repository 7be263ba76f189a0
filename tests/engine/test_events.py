"""Events sent in-process (`Engine.send`) are checked as HTTP's are: what Postgres cannot
store is an InvalidEvent naming the field, never a database error."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio

from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.builtin import register_builtin
from deneva.engine.engine import Engine
from deneva.engine.errors import InvalidEvent
from deneva.engine.functions import Registry
from tests.engine.conftest import EPOCH


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_unstorable_data_sent_in_process_is_an_invalid_event_naming_the_field(db: Database) -> None:
    engine = Engine(db, register_builtin(Registry()), TrioClock(EPOCH - trio.current_time()), "events-test")
    loop: dict[str, Any] = {}
    loop["self"] = loop
    cases: list[tuple[Any, str]] = [
        ({"name": "x/y", "data": {"a": ["x\x00"]}}, r"^event\.data\.a\[0\]: contains a NUL character"),
        (
            [{"name": "x/y"}, {"name": "x/y", "data": {"\udfff": 1}}],
            r"^events\[1\]\.data\[\"\\udfff\"\]: the key contains a lone surrogate",
        ),
        ({"name": "x/y", "data": {"s": "\ud83d"}}, r"^event\.data\.s: contains a lone surrogate \(\\ud83d\)"),
        ({"name": "x/y", "data": {"f": math.inf}}, r"^event\.data\.f: NaN or Infinity is not a JSON number"),
        ({"name": "x/y", "data": {"n": 10**5000}}, r"^event\.data\.n: an integer of more than 4300 digits"),
        ({"name": "x/y", "data": {"deep": _nested(100_000)}}, r"^event\.data: arrays or objects nested too"),
        ({"name": "x/y", "data": loop}, r"^event\.data: not JSON-serialisable \(Circular reference"),
        ({"name": "x/y\n"}, r"^event\.name: expected a name"),
        ({"name": "x/y", "id": "e1\n"}, r"^event\.id: expected"),
    ]
    for raw, message in cases:
        with pytest.raises(InvalidEvent, match=message):
            await engine.send(raw)
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0
    result = await engine.send({"name": "x/y", "data": {"emoji": "\U0001f600", "pair": "\ud83d\ude00"}})
    assert len(result.new_event_ids) == 1
