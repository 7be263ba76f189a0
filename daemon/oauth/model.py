"""Values of deneva's MCP authorization: scopes, lifetimes, token formats, the error taxonomy.

Secrets deneva issues are `dnv_<kind>_<id>_<secret>`: the id (16 hex characters) finds
the row, the SHA-256 of the whole string is compared in constant time, and only the
hash is stored (as for API keys). Kinds: `at` access token, `rt` refresh token, `ac`
authorization code, `cs` client secret. A tenant's connect code is shorter, for a
person to type: three groups of four letters and digits (60 bits), valid 15 minutes,
used once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from typing import Any

import attrs

from deneva.errors import DenevaError

SCOPES = ("reports:read", "reports:refresh")
DEFAULT_SCOPE = "reports:read reports:refresh"
ACCESS_TTL_S = 3600.0
REFRESH_TTL_S = 30 * 86400.0
CODE_TTL_S = 300.0
CONNECT_CODE_TTL_S = 15 * 60.0

_SECRET = re.compile(r"dnv_(at|rt|ac|cs)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_CONNECT_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
_CONNECT_CODE = re.compile(r"[A-Z2-9]{12}")


class OAuthError(DenevaError):
    """An RFC 6749 error (`error`, `error_description`) and the HTTP status it is sent with.

    The description is safe to show: it never holds a secret."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def hash_secret(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode()).digest()


def new_secret(kind: str) -> tuple[str, str]:
    """(id, plaintext) of a new secret of `kind` (at, rt, ac, cs)."""
    ident = secrets.token_hex(8)
    return ident, f"dnv_{kind}_{ident}_{secrets.token_urlsafe(32)}"


def parse_secret(plaintext: object, kind: str) -> str | None:
    """The id of a well-formed secret of `kind`, or None."""
    if not isinstance(plaintext, str):
        return None
    match = _SECRET.fullmatch(plaintext.strip())
    return match[2] if match and match[1] == kind else None


def matches(stored_hash: bytes, plaintext: str) -> bool:
    return hmac.compare_digest(bytes(stored_hash), hash_secret(plaintext.strip()))


def new_connect_code() -> str:
    raw = "".join(secrets.choice(_CONNECT_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalize_connect_code(text: object) -> str | None:
    """The code as stored (upper case, no dashes or spaces), or None if it cannot be one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    raw = re.sub(r"[\s-]", "", text).upper()
    return raw if _CONNECT_CODE.fullmatch(raw) else None


def parse_scope(text: object) -> tuple[str, ...] | None:
    """The scopes of a `scope` parameter in deneva's order, None if one is unknown."""
    if text is None or text == "":
        return tuple(DEFAULT_SCOPE.split())
    if not isinstance(text, str) or len(text) > 200:
        return None
    asked = set(text.split())
    if not asked or not asked <= set(SCOPES):
        return None
    return tuple(s for s in SCOPES if s in asked)


@attrs.frozen
class Client:
    client_id: str
    kind: str  # dcr | cimd
    client_name: str | None
    redirect_uris: tuple[str, ...]
    auth_method: str  # none | client_secret_post | client_secret_basic
    secret_hash: bytes | None = attrs.field(repr=False)
    metadata: dict[str, Any] = attrs.field(eq=False, repr=False)
    revoked: bool = False

    @property
    def display_name(self) -> str:
        return self.client_name or self.client_id


@attrs.frozen
class AuthorizationRequest:
    """A checked `/authorize` request: everything the consent page shows and the code binds."""

    client: Client
    redirect_uri: str
    scope: tuple[str, ...]
    state: str | None
    code_challenge: str
    resource: str

    @property
    def scope_text(self) -> str:
        return " ".join(self.scope)


@attrs.frozen
class AccessGrant:
    """What a valid access token lets its bearer do."""

    tenant_id: str
    grant_id: str
    client_id: str
    scopes: frozenset[str]
    resource: str
    expires_at: float  # epoch seconds


@attrs.frozen(repr=False)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str

    def __repr__(self) -> str:
        return f"IssuedTokens(scope={self.scope!r}, access_token=***, refresh_token=***)"

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": self.scope,
        }


def as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return None
