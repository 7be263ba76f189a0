"""A bounded, in-memory MCP session store with idle expiry and tenant binding.

Session ids are 256-bit random, URL-safe base64 (visible ASCII, as the Streamable
HTTP transport requires for `Mcp-Session-Id`). A session belongs to the tenant whose
key created it: looking it up with another tenant gives the same answer as an unknown
id, so ids cannot be probed across tenants.

One store serves both MCP endpoints, so the limits count HTTP sessions and WebSockets
together. A WebSocket's session does not expire here (`expires=False`): the socket owns
it, closes itself once idle (deneva.http.mcp_ws) and deletes it when it closes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import attrs

from deneva.errors import DenevaError

DEFAULT_MAX_SESSIONS = 10_000
DEFAULT_IDLE_TIMEOUT_S = 30 * 60.0
_ID_BYTES = 32
_MAX_ID_LENGTH = 128


class SessionLimitReached(DenevaError):
    """No room for another session (globally or for this tenant); try again later."""


@attrs.frozen
class Session:
    id: str
    tenant_id: str
    created_at: float
    last_seen: float
    protocol_version: str | None = None
    initialized: bool = False
    expires: bool = True  # False: its transport ends it (a WebSocket), idle or not


def new_session_id() -> str:
    return secrets.token_urlsafe(_ID_BYTES)


def is_valid_session_id(value: str) -> bool:
    """Visible ASCII (0x21..0x7E), non-empty, not absurdly long."""
    return 0 < len(value) <= _MAX_ID_LENGTH and all("\x21" <= c <= "\x7e" for c in value)


class SessionStore:
    def __init__(
        self,
        now: Callable[[], float],
        *,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        max_per_tenant: int | None = None,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
    ) -> None:
        if max_sessions < 1 or (max_per_tenant is not None and max_per_tenant < 1) or idle_timeout_s <= 0:
            raise ValueError("session limits and idle timeout must be positive")
        self._now = now
        self.max_sessions = max_sessions
        self.max_per_tenant = max_per_tenant
        self.idle_timeout_s = idle_timeout_s
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return session.expires and now - session.last_seen >= self.idle_timeout_s

    def expire(self) -> int:
        """Drop idle sessions; return how many were dropped."""
        now = self._now()
        dead = [sid for sid, s in self._sessions.items() if self._expired(s, now)]
        for sid in dead:
            del self._sessions[sid]
        return len(dead)

    def create(self, tenant_id: str, *, expires: bool = True) -> Session:
        """A new session for this tenant; SessionLimitReached when the store is full."""
        if len(self._sessions) >= self.max_sessions or self.max_per_tenant is not None:
            self.expire()
        if len(self._sessions) >= self.max_sessions:
            raise SessionLimitReached("too many open MCP sessions")
        if self.max_per_tenant is not None:
            count = sum(1 for s in self._sessions.values() if s.tenant_id == tenant_id)
            if count >= self.max_per_tenant:
                raise SessionLimitReached("too many open MCP sessions for this tenant")
        now = self._now()
        sid = new_session_id()
        while sid in self._sessions:  # pragma: no cover - 256 random bits
            sid = new_session_id()
        session = Session(id=sid, tenant_id=tenant_id, created_at=now, last_seen=now, expires=expires)
        self._sessions[sid] = session
        return session

    def lookup(self, session_id: str, tenant_id: str) -> Session | None:
        """The live session with this id owned by this tenant, else None (expired ones are dropped)."""
        session = self._sessions.get(session_id)
        if session is None or session.tenant_id != tenant_id:
            return None
        if self._expired(session, self._now()):
            del self._sessions[session_id]
            return None
        return session

    def touch(self, session_id: str, tenant_id: str) -> Session | None:
        """Look up and mark as used now."""
        session = self.lookup(session_id, tenant_id)
        if session is None:
            return None
        session = attrs.evolve(session, last_seen=self._now())
        self._sessions[session_id] = session
        return session

    def mark_initialized(self, session_id: str, tenant_id: str, protocol_version: str) -> Session | None:
        """Record the negotiated version; the session is now past `initialize`."""
        session = self.lookup(session_id, tenant_id)
        if session is None:
            return None
        session = attrs.evolve(
            session, protocol_version=protocol_version, initialized=True, last_seen=self._now()
        )
        self._sessions[session_id] = session
        return session

    def delete(self, session_id: str, tenant_id: str) -> bool:
        """End a session; False when it is unknown to this tenant."""
        if self.lookup(session_id, tenant_id) is None:
            return False
        del self._sessions[session_id]
        return True
