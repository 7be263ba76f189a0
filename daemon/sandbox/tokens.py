"""The tokens the sandbox accepts: those it issued and those a test registered.

Kinds: Google `refresh` and `access`; Meta `access` (short- or long-lived); TikTok
`access` and `auth_code` (single use). Issued tokens remember the token they came from,
so revoking a Google refresh token also kills the access tokens minted from it, and
revoking a Meta token kills the long-lived tokens exchanged from it. Issued token
strings are a function of their parent and how many were issued from it before, so a
fresh sandbox hands out the same sequence every run.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from typing import Any

import attrs

KINDS: dict[str, tuple[str, ...]] = {
    "google": ("refresh", "access"),
    "meta": ("access",),
    "tiktok": ("access", "auth_code"),
}


class TokenStatus(enum.Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    USED = "used"  # a single-use authorization code, already exchanged


@attrs.define
class TokenRecord:
    platform: str
    kind: str
    token: str
    parent: str | None
    expires_at: float | None  # wall-clock seconds; None never expires
    issued: bool
    revoked: bool = False
    expired: bool = False  # forced through the control API
    used: bool = False

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


_PREFIX = {
    ("google", "access"): "ya29.sandbox-",
    ("google", "refresh"): "1//sandbox-",
    ("meta", "access"): "EAAsandbox",
    ("tiktok", "access"): "act.sandbox",
}


class TokenRegistry:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.records: dict[tuple[str, str], TokenRecord] = {}
        self.issued_from: dict[tuple[str, str], int] = {}

    def register(self, platform: str, kind: str, token: str) -> TokenRecord:
        record = TokenRecord(platform, kind, token, None, None, issued=False)
        self.records[(platform, token)] = record
        return record

    def issue(self, platform: str, kind: str, parent: str, ttl_s: float | None) -> TokenRecord:
        n = self.issued_from.get((platform, parent), 0)
        self.issued_from[(platform, parent)] = n + 1
        digest = hashlib.sha256(f"{platform}\0{kind}\0{parent}\0{n}".encode()).hexdigest()[:32]
        token = _PREFIX.get((platform, kind), "sandbox-") + digest
        expires_at = self.clock() + ttl_s if ttl_s is not None else None
        record = TokenRecord(platform, kind, token, parent, expires_at, issued=True)
        self.records[(platform, token)] = record
        return record

    def get(self, platform: str, token: str) -> TokenRecord | None:
        return self.records.get((platform, token))

    def status(self, platform: str, kind: str, token: str) -> TokenStatus:
        record = self.records.get((platform, token))
        if record is None or record.kind != kind:
            return TokenStatus.UNKNOWN
        ancestor: TokenRecord | None = record
        seen = 0
        while ancestor is not None and seen < 64:
            if ancestor.revoked:
                return TokenStatus.REVOKED
            ancestor = self.records.get((platform, ancestor.parent)) if ancestor.parent else None
            seen += 1
        if record.used:
            return TokenStatus.USED
        if record.expired or (record.expires_at is not None and self.clock() >= record.expires_at):
            return TokenStatus.EXPIRED
        return TokenStatus.VALID

    def set_revoked(self, platform: str, token: str, revoked: bool) -> TokenRecord | None:
        record = self.records.get((platform, token))
        if record is not None:
            record.revoked = revoked
        return record

    def expire(self, platform: str, token: str) -> TokenRecord | None:
        record = self.records.get((platform, token))
        if record is not None:
            record.expired = True
        return record

    def describe(self, platform: str | None = None) -> list[dict[str, Any]]:
        return [r.as_json() for (p, _), r in self.records.items() if platform is None or p == platform]

    def clear(self) -> None:
        self.records.clear()
        self.issued_from.clear()
