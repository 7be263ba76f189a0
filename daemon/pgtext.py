"""Text Postgres cannot store, scrubbed: the NUL character (rejected in `text` and
`jsonb`) and lone UTF-16 surrogates (not encodable as UTF-8). JSON can carry both
(`\\u0000`, `\\ud800`). Events and step outputs that hold them are refused, naming the
field (`deneva.engine.events.unstorable_text`); ad-platform payloads, which we must cache
whatever they hold, get U+FFFD in their place here.

Hand-written: the standard library has no such scrub, and the walk is only done when
the raw JSON shows an escape that could be one of them (the common payload costs one
regex search).
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
# Bytes that may hold a NUL or a surrogate escape (a false positive costs only a walk).
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def scrub(value: Any) -> Any:
    """`value` with every NUL and lone surrogate in its strings (keys too) replaced by
    U+FFFD."""
    if isinstance(value, str):
        return _BAD_CHARS.sub(REPLACEMENT, value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def scrub_json_bytes(raw: bytes, value: Any) -> Any:
    """`scrub(value)` for a value decoded from JSON `raw`, walked only when `raw` shows
    an escape that could decode to one of them."""
    return scrub(value) if _SUSPECT.search(raw) else value
