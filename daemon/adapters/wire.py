"""HTTP plumbing shared by the adapters: bounded, counted calls and typed JSON readers.

Everything that can go wrong on the wire becomes a `PlatformError` here: timeouts and
connection failures are `transient`; a body that is not JSON is `transient` under a
5xx status (a proxy's error page) and `internal` otherwise; a JSON value of the wrong
shape is `internal` with the field named. Platform error bodies are read by each
adapter, which knows its platform's words.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import httpx
import trio

from deneva.adapters.base import Credentials, PlatformConfig, ReportRequest
from deneva.adapters.errors import ErrorCode, PlatformError
from deneva.pgtext import scrub_json_bytes

T = TypeVar("T")
R = TypeVar("R")


class ShapeError(Exception):
    """A JSON value is missing or of the wrong type; the message names it."""


class Session:
    """The HTTP calls of one adapter operation: each counted, each failure typed."""

    def __init__(
        self, client: httpx.AsyncClient, platform: str, config: PlatformConfig, secrets: Iterable[str | None]
    ) -> None:
        self.client = client
        self.platform = platform
        self.config = config
        self.secrets = [s for s in secrets if s]
        self.api_calls = 0

    def add_secret(self, value: str | None) -> None:
        """Keep `value` (a token obtained during the session) out of every message."""
        if value:
            self.secrets.append(value)

    def error(
        self,
        code: ErrorCode,
        detail: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> PlatformError:
        return PlatformError(
            code,
            self.platform,
            f"{self.platform} {detail}",
            status=status,
            retry_after_s=retry_after_s,
            secrets=self.secrets,
            api_calls=self.api_calls,
        )

    async def send(self, endpoint: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP request; timeouts and transport failures raise `transient`."""
        self.api_calls += 1
        timeout = httpx.Timeout(self.config.request_timeout_s, connect=self.config.connect_timeout_s)
        headers = {"user-agent": self.config.user_agent, **kwargs.pop("headers", {})}
        try:
            return await self.client.request(
                method, url, timeout=timeout, headers=headers, follow_redirects=False, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise self.error(
                "transient", f"{endpoint}: timed out ({type(exc).__name__}, limit {self._timeout_s()} s)"
            ) from None
        except httpx.TransportError as exc:
            raise self.error(
                "transient", f"{endpoint}: connection failed ({type(exc).__name__}: {exc})"
            ) from None

    def _timeout_s(self) -> str:
        return f"{self.config.request_timeout_s:g}"

    def json(self, endpoint: str, response: httpx.Response) -> Any:
        """The response's JSON body; a body that is not JSON raises (see the module doc)."""
        try:
            # NUL and lone surrogates (JSON escapes Postgres cannot store) become U+FFFD,
            # so one odd campaign name cannot fail every cache write of its account.
            return scrub_json_bytes(response.content, json.loads(response.content))
        except ValueError as exc:
            status = response.status_code
            kind = content_type(response)
            summary = f"{kind}, {len(response.content)} bytes"
            if "json" in kind and response.content:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
                what = f"response is truncated or invalid JSON ({summary}: {reason})"
            else:
                what = f"response is not JSON ({summary})"
            if status >= 500:
                raise self.error("transient", f"{endpoint}: HTTP {status}, {what}", status=status) from None
            suffix = "" if status == 200 else f" (HTTP {status})"
            raise self.error("internal", f"{endpoint}: {what}{suffix}", status=status) from None

    @contextmanager
    def reading(self, endpoint: str, status: int | None = None) -> Iterator[None]:
        """Turn a ShapeError raised while reading a response into an `internal` error."""
        try:
            yield
        except ShapeError as exc:
            raise self.error("internal", f"{endpoint}: {exc}", status=status) from None


@asynccontextmanager
async def open_session(
    config: PlatformConfig,
    http: httpx.AsyncClient | None,
    platform: str,
    what: str,
    secrets: Iterable[str | None],
) -> AsyncIterator[Session]:
    """A session on `http` (or a client of its own), bounded by `config.operation_timeout_s`.

    Every request carries the config's own timeouts and user agent, on a shared client too,
    and never follows a redirect.
    """
    secrets = (*secrets, *config.secrets())
    try:
        with trio.fail_after(config.operation_timeout_s):
            if http is not None:
                yield Session(http, platform, config, secrets)
                return
            async with httpx.AsyncClient() as client:
                yield Session(client, platform, config, secrets)
    except trio.TooSlowError:
        raise PlatformError(
            "transient", platform, f"{platform} {what}: no answer within {config.operation_timeout_s:g} s"
        ) from None


def require_url(platform: str, value: str, setting: str) -> str:
    """A configured base URL without its trailing slash, or `invalid_request` naming the setting."""
    if not value:
        raise PlatformError("invalid_request", platform, f"{platform}: {setting} is not configured")
    if not value.startswith(("http://", "https://")):
        raise PlatformError("invalid_request", platform, f"{platform}: {setting} must be an http(s) URL")
    return value.rstrip("/")


_SAFE_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def path_id(platform: str, value: str, what: str) -> str:
    """An id that is safe inside a URL path, or `invalid_request`."""
    if not _SAFE_ID.fullmatch(value):
        raise PlatformError(
            "invalid_request", platform, f"{platform}: {what} must be letters, digits, '_' or '-'"
        )
    return value


def content_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() or "no content type"


def retry_after(response: httpx.Response, clock: Callable[[], float]) -> float | None:
    """The Retry-After header in seconds (delta or HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - clock()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def duration_s(value: Any) -> float | None:
    """A protobuf JSON Duration ("7s", "1.5s") in seconds, None if it is not one."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- typed readers ----------------------------------------------------------------------


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _wrong(name: str, value: Any, expected: str) -> ShapeError:
    return ShapeError(f"{name} is {kind_of(value)}, expected {expected}")


def get(node: Any, path: str) -> Any:
    """The value at a dotted path through JSON objects; None when a key is absent."""
    for part in path.split("."):
        if node is None:
            return None
        if not isinstance(node, dict):
            raise _wrong(path, node, "an object")
        node = node.get(part)
    return node


def obj(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong(name, value, "an object")
    return value


def array(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _wrong(name, value, "a list")
    return value


def text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _wrong(name, value, "a string")
    return value


def loose_text(value: Any) -> str:
    """`value` if it is a string, else "" (for the optional words of an error body)."""
    return value if isinstance(value, str) else ""


def opt_text(value: Any, name: str) -> str | None:
    return None if value is None else text(value, name)


def ident(value: Any, name: str) -> str:
    """An id: a non-empty string, or an integer (Google int64 ids come as strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value:
        return value
    raise _wrong(name, value, "an id (string or integer)")


def integer(value: Any, name: str, *, missing: int | None = None) -> int:
    """An int, from a JSON integer or a string of digits; `missing` stands in for null."""
    if value is None and missing is not None:
        return missing
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value.strip()):
        return int(value)
    raise _wrong(name, value, "an integer")


def opt_integer(value: Any, name: str) -> int | None:
    return None if value is None else integer(value, name)


def number(value: Any, name: str, *, missing: float | None = None) -> float:
    """A finite float, from a JSON number or a numeric string; `missing` stands in for null."""
    if value is None and missing is not None:
        return missing
    result: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            result = None
    if result is None or not math.isfinite(result):
        raise _wrong(name, value, "a finite number")
    return result


def opt_number(value: Any, name: str) -> float | None:
    return None if value is None else number(value, name)


def build_rows(items: Iterable[T], build: Callable[[T], R]) -> list[R]:
    """`build` applied to each item; a ShapeError names the item's index."""
    out: list[R] = []
    for index, item in enumerate(items):
        try:
            out.append(build(item))
        except ShapeError as exc:
            raise ShapeError(f"row {index}: {exc}") from None
    return out


def check_fetch(platform: str, creds: Credentials, request: ReportRequest) -> None:
    """A fetch addressed to this adapter, with credentials for the requested account."""
    if request.platform != platform:
        raise PlatformError(
            "invalid_request", platform, f"{platform} adapter asked for a {request.platform} report"
        )
    check_creds(platform, creds)
    if creds.account_id != request.account_id:
        raise PlatformError(
            "invalid_request", platform, f"{platform}: credentials are for another account than the report's"
        )


def check_creds(platform: str, creds: Credentials) -> None:
    if creds.platform != platform:
        raise PlatformError(
            "invalid_request", platform, f"{platform} adapter given {creds.platform} credentials"
        )
