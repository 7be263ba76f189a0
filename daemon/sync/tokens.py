"""Token refresh (seed 000 §D), driven by deadlines.

- The token-refresh actor (`actors/token_refresh.py`) asks `TokenDeadlines.due` which
  credentials are due (their access token expires within the platform's margin,
  `REFRESH_MARGIN_S`: Google 10 minutes, Meta 3 days) and when the next one falls due;
  it sends one `refresh-one-token` event per due credential and sleeps until the next
  deadline, or until a credential changes anywhere (`deneva_credentials`).
- `refresh-one-token` refreshes one credential through `refresh_credential`: serialised
  with every other refresh of it (the adapters' lazy one included), written
  compare-and-set. A token someone else refreshed meanwhile is left alone.
- `eager-token-refresh` is the seed's fan-out, kept for operators (`deneva invoke`):
  every token expiring within the hour is refreshed now. It has no schedule: the actor
  does that work.

Google: a new access token from the refresh token. Meta: a fresh long-lived token
exchanged for the current one. TikTok tokens do not expire and are skipped. A revoked
token marks the credential unhealthy with `token_revoked` (not retried).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from deneva.adapters import Credentials, PlatformError
from deneva.clock import as_datetime
from deneva.db import Connection, Database
from deneva.engine.context import Context
from deneva.engine.errors import NonRetriableError, RetryAfterError
from deneva.engine.functions import Concurrency, EventTrigger, Function, Registry
from deneva.sql import query
from deneva.sync.credentials import REFRESH_MARGIN_S, expiring, refresh_credential
from deneva.sync.model import TOKEN_EVENT, Account, FanOut, SyncServices
from deneva.sync.reconnect import META_EXPIRY_WINDOW_S, reconnect_needed

REFRESH_FUNCTION = "refresh-one-token"
WINDOW_S = 3600.0  # eager-token-refresh: tokens expiring within the hour
SLOT_S = 900.0  # a credential still due after a failed refresh gets a new request this often
EXPIRING_PLATFORMS = tuple(REFRESH_MARGIN_S)  # TikTok's tokens never expire
_EXPIRING = query("tokens_expiring")
_EXPIRING_SKIPPED = query("tokens_expiring_skipped")
_DUE = query("tokens_due")
_TARGET = query("credentials_target")
_RECONNECTS = query("tokens_reconnect_needed")


def refresh_event(credential_id: uuid.UUID, expires_ms: int, now: float, within_s: float) -> dict[str, Any]:
    """The request to refresh one credential whose token expires at `expires_ms` (and
    expires within `within_s` when the refresh runs): if the token changed meanwhile,
    someone refreshed it already and nothing is done. Its id names the expiry and a
    15-minute slot: every replica asks once per slot, and a refresh that failed is asked
    again."""
    slot = int(now // SLOT_S)
    return {
        "name": TOKEN_EVENT,
        "id": f"token:{credential_id}:{expires_ms}:{slot}",
        "data": {"credential_id": str(credential_id), "within_s": within_s, "expires_ms": expires_ms},
    }


def still_due(within_s: float, expires_ms: int | None) -> Callable[[Credentials, float], bool]:
    """What `refresh-one-token` asks once it has the credential to itself: is the token the
    one the request was made for (when it says), and does it expire within `within_s`?"""

    def due(creds: Credentials, now: float) -> bool:
        expires = creds.access_token_expires_at
        if expires_ms is not None and (expires is None or round(expires * 1000) != expires_ms):
            return False  # refreshed (or reconnected) since it was asked for
        return expiring(creds, now, within_s)

    return due


def _platforms(platforms: Sequence[str]) -> list[str]:
    return [p for p in platforms if p in EXPIRING_PLATFORMS]


async def expiring_tokens(
    conn: Connection, now: float, platforms: Sequence[str] = EXPIRING_PLATFORMS, limit: int = 10_000
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Refresh events for the tokens of `platforms` that expire within the hour, and how
    many expiring ones were left alone, by why."""
    chosen, before = _platforms(platforms), as_datetime(now + WINDOW_S)
    rows = await conn.fetch(_EXPIRING, before, chosen, limit)
    skipped = {r["reason"]: int(r["n"]) for r in await conn.fetch(_EXPIRING_SKIPPED, before, chosen)}
    return [refresh_event(r["id"], r["expires_ms"], now, WINDOW_S) for r in rows], skipped


@attrs.frozen
class DueTokens:
    events: tuple[dict[str, Any], ...]
    next_due: float | None  # when the next credential falls due (None: none will)


@attrs.frozen
class TokenDeadlines:
    """What the token-refresh actor asks: which credentials are due, and when next."""

    db_of: Callable[[], Database]
    platforms_of: Callable[[], Sequence[str]]
    margins_s: dict[str, float] = attrs.Factory(lambda: dict(REFRESH_MARGIN_S))
    limit: int = 10_000

    async def due(self, now: float) -> DueTokens:
        platforms = _platforms(self.platforms_of())
        if not platforms:
            return DueTokens((), None)
        rows = await self.db_of().fetch(_DUE, as_datetime(now), platforms, self.margins_s, self.limit)
        events = tuple(
            refresh_event(r["id"], r["expires_ms"], now, self.margins_s[r["platform"]])
            for r in rows
            if r["id"]
        )
        nexts = [r["next_due"] for r in rows if r["id"] is None and r["next_due"] is not None]
        return DueTokens(events, nexts[0].timestamp() if nexts else None)

    async def reconnects(self, now: float) -> list[ReconnectNeeded]:
        """The credentials no refresh can cure: they wait for `deneva connect`."""
        return await reconnects_needed(self.db_of(), now)


@attrs.frozen
class ReconnectNeeded:
    tenant: str
    platform: str
    account_id: str
    reason: str


async def reconnects_needed(db: Database, now: float, limit: int = 1000) -> list[ReconnectNeeded]:
    """Every credential that waits for an operator's reconnect (deneva.sync.reconnect)."""
    rows = await db.fetch(_RECONNECTS, as_datetime(now + META_EXPIRY_WINDOW_S), limit)
    out = []
    for r in rows:
        found = reconnect_needed(
            r["platform"],
            r["tenant"],
            r["account_id"],
            r["last_error_code"],
            r["access_token_expires_at"],
            now,
        )
        if found is not None:
            out.append(ReconnectNeeded(r["tenant"], r["platform"], r["account_id"], found.reason))
    return out


async def _credential_account(conn: Connection, credential_id: uuid.UUID) -> Account | None:
    row = await conn.fetchrow(_TARGET, credential_id)
    return None if row is None else Account(row["tenant_id"], row["platform"], row["account_id"])


def register_token_refresh(registry: Registry, services_of: Callable[[], SyncServices]) -> None:
    async def eager_token_refresh(ctx: Context) -> dict[str, Any]:
        now = ctx.event["ts"] / 1000
        services = services_of()
        db, platforms = services.db, tuple(services.adapters)

        async def find() -> dict[str, Any]:
            events, skipped = await db.run(lambda conn: expiring_tokens(conn, now, platforms))
            return {"events": events, "skipped": skipped}

        found = await ctx.step.run("find-expiring", find)
        events, skipped = found["events"], found["skipped"]
        if not events:
            return FanOut(0, skipped).as_json()
        if await ctx.step.paused(REFRESH_FUNCTION):
            return FanOut(0, {**skipped, "paused": len(events)}).as_json()
        sent = await ctx.step.send_event("refresh", events)
        return FanOut(len(events) - len(sent.errors), skipped, len(sent.errors), sent.errors[:10]).as_json()

    async def refresh_one_token(ctx: Context) -> dict[str, Any]:
        services = services_of()
        try:
            credential_id = uuid.UUID(str(ctx.data["credential_id"]))
            within = ctx.data.get("within_s")
            within_s = None if within is None else float(within)
            expires = ctx.data.get("expires_ms")
            expires_ms = None if expires is None else int(expires)
        except (KeyError, ValueError, TypeError):
            raise NonRetriableError(
                "token refresh: missing or bad credential_id, within_s or expires_ms"
            ) from None
        account = await services.db.run(lambda conn: _credential_account(conn, credential_id))
        if account is None:
            return {"skipped": "credential was removed"}
        if account.platform not in EXPIRING_PLATFORMS:
            return {"skipped": f"{account.platform} tokens do not expire"}
        if account.platform not in services.adapters:
            return {"skipped": f"{account.platform} is not synced by this daemon"}

        margin = REFRESH_MARGIN_S[account.platform] if within_s is None else within_s

        async def refresh() -> dict[str, Any]:
            try:
                result = await refresh_credential(services, account, still_due(margin, expires_ms))
            except PlatformError as error:
                if error.code == "token_revoked":
                    raise NonRetriableError(f"token_revoked: {error.message}") from None
                if error.code == "rate_limited" and error.retry_after_s:
                    raise RetryAfterError(error.message, error.retry_after_s) from None
                raise
            body: dict[str, Any] = {"platform": account.platform, "expiresAt": result.expires_at}
            if result.skipped:
                body["skipped"] = result.skipped
            return body

        result: dict[str, Any] = await ctx.step.run("refresh", refresh)
        return result

    registry.add(Function("eager-token-refresh", eager_token_refresh, retries=0))
    registry.add(
        Function(
            REFRESH_FUNCTION,
            refresh_one_token,
            (EventTrigger(TOKEN_EVENT),),
            retries=3,
            concurrency=Concurrency(1, key="data.credential_id"),
        )
    )
