"""What travels over the wire: a parsed request in, a platform response out.

Handlers are plain functions from `Incoming` to `ApiResponse`; only `app.py` touches
Quart. Request ids are derived from the request itself so that the same request gets
the same bytes back.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl

import attrs

JSON_TYPE = "application/json; charset=UTF-8"


@attrs.frozen
class Incoming:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    host_url: str  # "http://127.0.0.1:port/"

    @property
    def args(self) -> dict[str, str]:
        """Query parameters; the first value wins when one is repeated."""
        return _first_values(self.query_string)

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body, or a JSON object body, as strings."""
        if "json" in self.headers.get("content-type", ""):
            try:
                data = json.loads(self.body or b"{}")
            except ValueError:
                return {}
            if not isinstance(data, dict):
                return {}
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        return _first_values(self.body.decode("utf-8", "replace"))

    def fingerprint(self, length: int = 22) -> str:
        """A url-safe id that is a function of the request (method, path, query, body)."""
        digest = hashlib.sha256(
            b"\0".join((self.method.encode(), self.path.encode(), self.query_string.encode(), self.body))
        ).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length]

    def hex_fingerprint(self, length: int = 32) -> str:
        digest = hashlib.sha256(
            b"\0".join((self.method.encode(), self.path.encode(), self.query_string.encode(), self.body))
        ).hexdigest()
        return digest[:length].upper()


def _first_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        values.setdefault(key, value)
    return values


@attrs.frozen
class ApiResponse:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> ApiResponse:
    return ApiResponse(status, dumps(payload), JSON_TYPE, headers)
