"""What a function's results become: plain JSON, or a clear error (`json_value`)."""

from __future__ import annotations

import enum

import pytest

from deneva.engine.context import json_value
from deneva.engine.errors import NonRetriableError


class Colour(enum.IntEnum):
    RED = 1


def test_plain_results_come_back_as_they_are() -> None:
    for value in (None, True, 0, -7, 2**62, "done", "", 1.5, [1, "a"], {"k": {"n": None}}):
        assert json_value(value, "result") == value


def test_results_come_back_as_plain_json() -> None:
    assert type(json_value(Colour.RED, "result")) is int
    assert json_value((1, 2), "result") == [1, 2]
    assert json_value({"when": "naïve"}, "result") == {"when": "naïve"}


def test_what_json_or_postgres_cannot_hold_is_a_non_retriable_error() -> None:
    with pytest.raises(NonRetriableError, match="contains a NUL"):
        json_value("bad\x00name", "step 'x'")
    with pytest.raises(NonRetriableError, match="lone surrogate"):
        json_value("lone \ud800", "result")
    with pytest.raises(NonRetriableError, match="not JSON-serialisable"):
        json_value(10**5000, "result")
    with pytest.raises(NonRetriableError, match="not JSON-serialisable"):
        json_value({1, 2}, "result")
