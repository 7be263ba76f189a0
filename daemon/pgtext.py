"""Text Postgres cannot store: the NUL character (rejected in `text` and `jsonb`) and
lone UTF-16 surrogates (not encodable as UTF-8). JSON can carry both (`\\u0000`,
`\\ud800`), so every value that reaches the database from outside is checked here:
rejected with the path of the offending string (events, step outputs), or scrubbed to
U+FFFD (ad-platform payloads, which we must cache whatever they hold).

Hand-written: the standard library has no check, and a walk is only done when the
encoded text shows an escape that could be one of them (the common value costs one
substring search).
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
# An escape sequence \u0000 (not an escaped backslash followed by "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# Bytes that may hold a NUL or a surrogate escape (a false positive costs only a walk).
_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def problem_in(value: Any, where: str) -> str | None:
    """Why `value` (JSON-like) cannot be stored, naming the path of the string, or None."""
    if isinstance(value, str):
        bad = _BAD_CHARS.search(value)
        if bad is None:
            return None
        what = "a NUL character" if bad.group() == "\x00" else "a lone surrogate"
        return f"{where} holds {what} (U+{ord(bad.group()):04X}), which cannot be stored"
    if isinstance(value, dict):
        for key, item in value.items():
            found = problem_in(key, f"{where} key") if isinstance(key, str) else None
            found = found or problem_in(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = problem_in(item, f"{where}[{i}]")
            if found:
                return found
    return None


def json_text_problem(text: str, value: Any, where: str) -> str | None:
    """`problem_in` for a value already encoded as `text` (json.dumps, ASCII): the walk
    is only done when the text shows a NUL or surrogate escape."""
    surrogate = "\\ud" in text  # json.dumps writes lower-case hex (a pair shows it too)
    if surrogate or ("\\u0000" in text and _NUL_ESCAPE.search(text)):
        return problem_in(value, where)
    return None


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
