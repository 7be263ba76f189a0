"""The adapters' one error taxonomy: `PlatformError` with a typed `code`.

Codes, and what the sync layer should make of them:

    token_revoked    the credential no longer works (Google invalid_grant or a 401 that
                     survives a fresh token, Meta 190/102 and permission errors, TikTok
                     401xx auth codes): reconnect, do not retry
    rate_limited     the platform asks us to slow down; `retry_after_s` when it says how long
                     (Google: also a Cloud project's daily operations quota used up)
    transient        5xx, timeouts, connection failures: retry later
    invalid_request  the request (or our configuration) is wrong: a bad parameter, an
                     unknown platform, report type or date range, a missing base URL, an
                     API version the platform no longer serves, a Google Cloud project
                     whose access level does not reach the account; the message says
                     what to change
    not_found        the account does not exist or this credential cannot see it
    internal         the platform answered something we cannot read: not JSON, truncated
                     JSON, an HTML page, a field of the wrong type; the message says what

Messages are safe to log: `scrub` removes the tokens and secrets the adapter knows of,
anything that looks like a token parameter or bearer credential, and caps the length.
No message ever contains a request URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal, get_args

from deneva.errors import DenevaError

ErrorCode = Literal["token_revoked", "rate_limited", "transient", "invalid_request", "not_found", "internal"]
ERROR_CODES: Final[frozenset[str]] = frozenset(get_args(ErrorCode))

REDACTED = "[redacted]"
MAX_MESSAGE = 500

_TOKEN_PARAMS = re.compile(
    r"(?i)\b(access_token|refresh_token|fb_exchange_token|client_secret|appsecret_proof|"
    r"auth_code|secret|token|key|password)=[^&\s\"'<>]+"
)
_AUTH_SCHEMES = re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9._~+/=\-]{8,}")
_TOKEN_HEADERS = re.compile(r"(?i)\b(access-token|developer-token|authorization)\s*[:=]\s*[^\s,;\"']+")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without the given secret values or anything shaped like a credential, capped."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _TOKEN_PARAMS.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    text = _AUTH_SCHEMES.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _TOKEN_HEADERS.sub(lambda m: f"{m.group(1)}: {REDACTED}", text)
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return text


class PlatformError(DenevaError):
    """An ad platform call failed; `code` says how, the message (safe to log) says why.

    `platform` is "google", "meta" or "tiktok" (or the unknown name a caller asked for),
    `status` the HTTP status when there was a response, `retry_after_s` the delay a
    rate-limited answer asked for (None when it did not say), `api_calls` the HTTP
    requests the failed operation made.
    """

    code: ErrorCode
    platform: str
    status: int | None
    retry_after_s: float | None

    def __init__(
        self,
        code: ErrorCode,
        platform: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
        secrets: Iterable[str | None] = (),
        api_calls: int = 0,
    ) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown platform error code {code!r}")
        self.code = code
        self.platform = platform
        self.status = status
        self.retry_after_s = retry_after_s if code == "rate_limited" else None
        self.api_calls = api_calls  # HTTP requests made before it failed (metrics)
        self.message = scrub(message, secrets)
        super().__init__(self.message)

    def __repr__(self) -> str:
        extras = ""
        if self.status is not None:
            extras += f", status={self.status}"
        if self.retry_after_s is not None:
            extras += f", retry_after_s={self.retry_after_s}"
        return f"PlatformError({self.code!r}, {self.platform!r}, {self.message!r}{extras})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments do not survive the default pickling of exceptions.
        return (_rebuild, (self.code, self.platform, self.message, self.status, self.retry_after_s))


def _rebuild(
    code: ErrorCode, platform: str, message: str, status: int | None, retry_after_s: float | None
) -> PlatformError:
    return PlatformError(code, platform, message, status=status, retry_after_s=retry_after_s)
