"""Events: parsed and checked once at the boundary, then trusted."""

from __future__ import annotations

import json
import math
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from deneva.engine.errors import InvalidEvent

MAX_EVENT_BYTES = 256 * 1024  # one event's JSON, name and data included
MAX_BATCH = 10_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")  # fullmatch: `$` would let "\n" through
_ID = re.compile(r"[A-Za-z0-9._:/-]{1,200}")
_LONE_SURROGATE = re.compile(r"[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Reused (json.dumps with options builds an encoder per call); not ASCII-escaped, so
# non-ASCII text stays short and a lone surrogate stays a character UTF-8 cannot encode.
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)


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
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidEvent(f"{where}.name: expected a name like 'app/thing.happened', got {name!r}")
    data = raw.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"{where}.data: expected a JSON object")
    event_id = raw.get("id")
    if event_id is None or event_id == "":
        event_id = new_event_id()
    elif not isinstance(event_id, str) or not _ID.fullmatch(event_id):
        raise InvalidEvent(f"{where}.id: expected up to 200 letters, digits or ._:/-")
    ts_raw = raw.get("ts")
    if ts_raw is None:
        ts = now
    elif isinstance(ts_raw, bool) or not isinstance(ts_raw, int | float) or not 0 <= ts_raw < 1e13:
        raise InvalidEvent(f"{where}.ts: expected milliseconds since the Unix epoch")
    else:
        ts = ts_raw / 1000
    try:
        text = _ENCODER.encode({"name": name, "data": data})
    except RecursionError:
        raise InvalidEvent(f"{where}.data: arrays or objects nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(unserialisable(data, f"{where}.data", exc)) from None
    # Postgres refuses NUL and lone surrogates in jsonb: the text shows both cheaply (an
    # escape, a character UTF-8 cannot encode); the data is walked only to name the field.
    try:
        size = len(text) if text.isascii() else len(text.encode())
    except UnicodeEncodeError:
        size = -1
    if size < 0 or ("\\" in text and "\\u0000" in text):  # one character is found fastest
        problem = unstorable_text(data, f"{where}.data")
        if problem is not None:
            raise InvalidEvent(problem)
        size = len(text.encode(errors="surrogatepass"))  # a look-alike: a literal "\\u0000"
    if size > MAX_EVENT_BYTES:
        raise InvalidEvent(f"{where}: {size} bytes of JSON, over the limit of {MAX_EVENT_BYTES}")
    return Event(name, dict(data), event_id, ts)


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}[{json.dumps(key)}]"


def _children(value: Any, path: str) -> list[tuple[Any, str]]:
    if isinstance(value, Mapping):
        return [(v, _key_path(path, str(k))) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return []


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which the database cannot store"
    surrogate = _LONE_SURROGATE.search(text)
    if surrogate is not None:
        return f"contains a lone surrogate (\\u{ord(surrogate[0]):04x}), which is not valid Unicode"
    return None


def unstorable_text(data: Any, path: str) -> str | None:
    """The first string (value or key) in `data` Postgres cannot store, named by its path."""
    stack = [(data, path)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str):
            problem = _text_problem(value)
            if problem is not None:
                return f"{at}: {problem}"
        elif isinstance(value, Mapping):
            for key in value:
                problem = _text_problem(key) if isinstance(key, str) else None
                if problem is not None:
                    return f"{_key_path(at, key)}: the key {problem}"
        stack.extend(reversed(_children(value, at)))
    return None


def unserialisable(data: Any, path: str, error: Exception) -> str:
    """Why json.dumps refused `data`, named by the field's path where one is to blame."""
    seen: set[int] = set()
    stack = [(data, path)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"{at}: NaN or Infinity is not a JSON number"
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                str(value)
            except ValueError:
                return f"{at}: an integer of more than {sys.get_int_max_str_digits()} digits"
        if isinstance(value, Mapping | list | tuple) and id(value) not in seen:
            seen.add(id(value))
            stack.extend(reversed(_children(value, at)))
    return f"{path}: not JSON-serialisable ({error})"


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
