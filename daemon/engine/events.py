"""Events: parsed and checked once at the boundary, then trusted."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from deneva.engine.errors import InvalidEvent

MAX_EVENT_BYTES = 256 * 1024  # one event's JSON, name and data included
MAX_BATCH = 10_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$")
_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,200}$")


@attrs.frozen
class Event:
    name: str
    data: dict[str, Any]
    id: str
    ts: float  # Unix seconds

    def document(self) -> dict[str, Any]:
        """The JSON form functions and match paths see: {name, data, id, ts (ms)}."""
        return {"name": self.name, "data": self.data, "id": self.id, "ts": int(self.ts * 1000)}


def new_event_id() -> str:
    return uuid.uuid4().hex


def parse_event(raw: Any, now: float, where: str = "event") -> Event:
    """Check one untrusted event; raise InvalidEvent naming the bad field."""
    if not isinstance(raw, Mapping):
        raise InvalidEvent(f"{where}: expected a JSON object with name and data")
    unknown = sorted(set(raw) - {"name", "data", "id", "ts", "v", "user"})
    if unknown:
        raise InvalidEvent(f"{where}: unknown field {unknown[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidEvent(f"{where}.name: expected a name like 'app/thing.happened', got {name!r}")
    data = raw.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"{where}.data: expected a JSON object")
    event_id = raw.get("id")
    if event_id is None or event_id == "":
        event_id = new_event_id()
    elif not isinstance(event_id, str) or not _ID.match(event_id):
        raise InvalidEvent(f"{where}.id: expected up to 200 letters, digits or ._:/-")
    ts_raw = raw.get("ts")
    if ts_raw is None:
        ts = now
    elif isinstance(ts_raw, bool) or not isinstance(ts_raw, int | float) or not 0 <= ts_raw < 1e13:
        raise InvalidEvent(f"{where}.ts: expected milliseconds since the Unix epoch")
    else:
        ts = ts_raw / 1000
    try:
        size = len(json.dumps({"name": name, "data": data}))
    except (TypeError, ValueError):
        raise InvalidEvent(f"{where}.data: not JSON-serialisable") from None
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"{where}: {size} bytes of JSON, over the limit of {MAX_EVENT_BYTES}")
    return Event(name, dict(data), event_id, ts)


def lookup(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a dotted path in an event document; KeyError names the missing part."""
    value: Any = document
    for i, part in enumerate(path):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(".".join(path[: i + 1]))
        value = value[part]
    return value


def parse_path(text: str) -> tuple[str, ...]:
    parts = tuple(text.split("."))
    if not text or any(not p for p in parts) or parts[0] not in ("data", "name", "id", "ts"):
        raise ValueError(f"bad event path {text!r}: expected e.g. 'data.tenant_id'")
    return parts
