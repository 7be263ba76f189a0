"""Who may use the operator console (issue 15): sign-in, sessions, CSRF, the audit trail.

- **Sign-in** with DENEVA_ADMIN_TOKEN (role `admin`: sees and acts) or
  DENEVA_ADMIN_READONLY_TOKEN (role `readonly`: sees everything, acts on nothing). A token
  is compared with both in constant time, both every time. Failed sign-ins are limited
  per client address in this process (`ConsoleSettings.sign_in_failures` per
  `sign_in_window_s`); the login form itself carries a CSRF token (a random value in a
  cookie and in the form, which must match: a site that cannot read our pages cannot post
  a sign-in of its own).
- **Sessions** live in Postgres (`admin_sessions`, migration 0012), so one signed in on
  any replica works on all of them and can be ended at once: the cookie holds a random
  secret, the table its SHA-256. A session ends `ttl_s` after sign-in, or once unused for
  `idle_s` (0: never idle); signing out deletes it; the janitor deletes expired ones.
- **CSRF**: every form of a session carries its token, an HMAC of the session's secret
  (so it needs no storage and dies with the session); every POST is checked against it.
- **Audit**: every sign-in (success or failure), sign-out and console action writes an
  `audit_log` row whose actor is `console:<role>:<first 8 characters of the session id>`
  (the public id, never the secret or a token).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any, Final, Literal

import attrs

from deneva.clock import Clock, as_datetime
from deneva.db import Connection, Database
from deneva.mcp.report_tools import TenantRateLimit
from deneva.secrets import Secret
from deneva.sql import query

Role = Literal["admin", "readonly"]
SESSION_COOKIE: Final = "deneva_console"
LOGIN_COOKIE: Final = "deneva_console_login"
COOKIE_PATH: Final = "/admin"
LOGIN_FORM_TTL_S: Final = 3600
_CSRF_CONTEXT = b"deneva console csrf\0"
_CREATE = query("console_session_create")
_FIND = query("console_session_find")
_TOUCH = query("console_session_touch")
_DELETE = query("console_session_delete")
_AUDIT = query("console_audit")
TOUCH_EVERY_S = 60.0  # a session's last use is written at most this often


@attrs.frozen
class ConsoleSettings:
    ttl_s: float = 12 * 3600.0
    idle_s: float = 3600.0  # 0: no idle limit
    sign_in_failures: int = 10  # failed sign-ins a client address may make per window
    sign_in_window_s: float = 300.0
    # Cookies marked Secure whatever the request's scheme (public_url is https).
    secure_cookies: bool = False


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@attrs.frozen(repr=False)
class ConsoleSession:
    """A signed-in operator: the session's public id, role and end; its secret (the
    cookie's value) only derives the CSRF token."""

    id: uuid.UUID
    role: Role
    expires_at: float
    _secret: str = attrs.field(alias="secret")

    def __repr__(self) -> str:
        return f"ConsoleSession({self.id}, {self.role})"

    @property
    def actor(self) -> str:
        return f"console:{self.role}:{str(self.id)[:8]}"

    @property
    def can_act(self) -> bool:
        return self.role == "admin"

    @property
    def csrf(self) -> str:
        return hmac.new(self._secret.encode(), _CSRF_CONTEXT, "sha256").hexdigest()

    def csrf_ok(self, given: str | None) -> bool:
        return hmac.compare_digest((given or "").encode(), self.csrf.encode())


@attrs.frozen
class NoSession:
    """Why a request has no usable session: `missing` (never signed in, or signed out) or
    `expired` (its time or idle limit passed)."""

    reason: Literal["missing", "expired"]


async def audit(
    conn: Connection,
    actor: str,
    event_type: str,
    details: dict[str, Any] | None = None,
    *,
    tenant_id: uuid.UUID | None = None,
    outcome: str = "success",
) -> None:
    """One console audit row (inside the action's own transaction where there is one)."""
    await conn.execute(_AUDIT, tenant_id, event_type, outcome, actor, details or {})


class ConsoleAuth:
    """The console's sign-in and sessions, on the daemon's database and clock."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        admin_token: Secret,
        readonly_token: Secret | None = None,
        settings: ConsoleSettings | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings or ConsoleSettings()
        self._admin = admin_token.reveal().encode()
        self._readonly = None if readonly_token is None else readonly_token.reveal().encode()
        self.failures = TenantRateLimit(clock, self.settings.sign_in_failures, self.settings.sign_in_window_s)

    @property
    def has_readonly(self) -> bool:
        return self._readonly is not None

    def role_of(self, given: str) -> Role | None:
        """The role `given` signs in as; both tokens are compared, in constant time."""
        candidate = given.strip().encode()
        is_admin = hmac.compare_digest(candidate, self._admin)
        # Compared even when there is no read-only token, so the time taken says nothing.
        is_readonly = (
            hmac.compare_digest(candidate, self._readonly or self._admin) and self._readonly is not None
        )
        if is_admin:
            return "admin"
        return "readonly" if is_readonly else None

    def sign_in_blocked_for(self, client: str) -> float | None:
        """How long `client` must wait before trying again, None if it may try now."""
        return self.failures.blocked_for(client)

    async def sign_in(self, role: Role, client: str) -> tuple[ConsoleSession, str]:
        """A new session for `role` (and its audit row, one transaction); the session and
        the secret for its cookie, shown to nobody else."""
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + self.settings.ttl_s

        async def create(conn: Connection) -> uuid.UUID:
            session_id: uuid.UUID = await conn.fetchval(
                _CREATE, _hash(secret), role, as_datetime(now), as_datetime(expires)
            )
            actor = ConsoleSession(session_id, role, expires, secret).actor
            await audit(conn, actor, "console.sign_in", {"role": role, "client": client[:100]})
            return session_id

        session_id = await self.db.transaction(create)
        return ConsoleSession(session_id, role, expires, secret), secret

    async def refuse_sign_in(self, client: str, reason: str) -> float | None:
        """A failed sign-in: counted against `client` and audited; how long it must now wait
        (None: it may try again at once)."""
        self.failures.retry_in_s(client)
        details = {"client": client[:100], "reason": reason}
        await self.db.run(
            lambda conn: audit(conn, "console:sign-in", "console.sign_in", details, outcome="failure")
        )
        return self.failures.blocked_for(client)

    async def session(self, secret: str | None) -> ConsoleSession | NoSession:
        """The session a cookie holds, if it is still usable (its last use noted)."""
        if not secret or len(secret) > 200:
            return NoSession("missing")
        now = self.clock.now()
        idle_s = self.settings.idle_s

        async def find(conn: Connection) -> ConsoleSession | NoSession:
            row = await conn.fetchrow(_FIND, _hash(secret))
            if row is None:
                return NoSession("missing")
            last_seen = row["last_seen_at"].timestamp()
            if row["expires_at"].timestamp() <= now or (idle_s and last_seen + idle_s <= now):
                return NoSession("expired")
            if idle_s and now - last_seen >= min(TOUCH_EVERY_S, idle_s / 4):
                await conn.execute(_TOUCH, row["id"], as_datetime(now))
            return ConsoleSession(row["id"], row["role"], row["expires_at"].timestamp(), secret)

        return await self.db.run(find)

    async def sign_out(self, session: ConsoleSession) -> None:
        """End `session` on every replica at once (and audit it)."""

        async def delete(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute(_DELETE, session.id)
                await audit(conn, session.actor, "console.sign_out")

        await self.db.run(delete)


def login_form_token() -> str:
    """The sign-in form's CSRF value (in its cookie and in the form)."""
    return secrets.token_urlsafe(32)


def login_form_ok(cookie: str | None, given: str | None) -> bool:
    return bool(cookie) and hmac.compare_digest((cookie or "").encode(), (given or "").encode())
