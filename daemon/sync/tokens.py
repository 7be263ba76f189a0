"""Eager token refresh (seed 000 §D): `eager-token-refresh` runs every 15 minutes and
asks `refresh-one-token` to refresh every access token that expires within the hour.

- Refreshes of one credential are serialised (concurrency key: the credential id).
- Google: a new access token from the refresh token. Meta: a fresh long-lived token
  exchanged for the current one. TikTok tokens do not expire and are skipped.
- A revoked token marks the credential unhealthy with `token_revoked` (not retried);
  adapters still refresh lazily when a token turns out to be stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from deneva.adapters import PlatformError
from deneva.clock import as_datetime
from deneva.credentials import PlainTokens, store_tokens
from deneva.db import Connection
from deneva.engine.context import Context
from deneva.engine.errors import NonRetriableError, RetryAfterError
from deneva.engine.functions import Concurrency, CronTrigger, EventTrigger, Function, Registry
from deneva.sync.worker import RefreshTarget, SyncServices, _load_credentials

TOKEN_EVENT = "sync/token.refresh-requested"
WINDOW_S = 3600.0

_EXPIRING = """
SELECT id, (extract(epoch FROM access_token_expires_at) * 1000)::bigint AS expires_ms
FROM platform_credentials
WHERE platform = ANY($2::text[]) AND access_token_expires_at IS NOT NULL
  AND access_token_expires_at < $1 AND coalesce(last_error_code, '') <> 'token_revoked'
ORDER BY access_token_expires_at
LIMIT 10000
"""


async def expiring_tokens(
    conn: Connection, now: float, platforms: Sequence[str] = ("google", "meta")
) -> list[dict[str, Any]]:
    """Refresh events for the tokens of `platforms` that expire within the hour (TikTok's never do)."""
    expiring = [p for p in platforms if p in ("google", "meta")]
    rows = await conn.fetch(_EXPIRING, as_datetime(now + WINDOW_S), expiring)
    return [
        {
            "name": TOKEN_EVENT,
            "id": f"token:{r['id']}:{r['expires_ms']}",
            "data": {"credential_id": str(r["id"])},
        }
        for r in rows
    ]


async def _credential_target(conn: Connection, credential_id: uuid.UUID) -> RefreshTarget | None:
    row = await conn.fetchrow(
        "SELECT tenant_id, platform, account_id FROM platform_credentials WHERE id = $1", credential_id
    )
    if row is None:
        return None
    return RefreshTarget(
        row["tenant_id"], row["platform"], row["account_id"], "account_health", "last_7_days"
    )


def register_token_refresh(registry: Registry, services_of: Callable[[], SyncServices]) -> None:
    async def eager_token_refresh(ctx: Context) -> dict[str, int]:
        now = ctx.event["ts"] / 1000
        services = services_of()
        db, platforms = services.db, tuple(services.adapters)
        events = await ctx.step.run(
            "find-expiring", lambda: db.run(lambda conn: expiring_tokens(conn, now, platforms))
        )
        if events:
            await ctx.step.send_event("refresh", events)
        return {"tokens": len(events)}

    async def refresh_one_token(ctx: Context) -> dict[str, Any]:
        services = services_of()
        db, clock = services.db, services.clock
        try:
            credential_id = uuid.UUID(str(ctx.data["credential_id"]))
        except (KeyError, ValueError):
            raise NonRetriableError("token refresh: missing or bad credential_id") from None
        target = await db.run(lambda conn: _credential_target(conn, credential_id))
        if target is None:
            return {"skipped": "credential was removed"}
        if target.platform == "tiktok":
            return {"skipped": "tiktok tokens do not expire"}
        if target.platform not in services.adapters:
            return {"skipped": f"{target.platform} is not synced by this daemon"}

        async def refresh() -> dict[str, Any]:
            creds = await db.run(lambda conn: _load_credentials(conn, services.kek, target))
            try:
                grant = await services.adapters[target.platform].refresh_token(creds)
            except PlatformError as error:
                if error.code == "token_revoked":
                    await db.execute(
                        "UPDATE platform_credentials SET healthy = false, last_error_code = 'token_revoked', "
                        "last_sync_failure_at = $2, updated_at = $2 WHERE id = $1",
                        credential_id,
                        as_datetime(clock.now()),
                    )
                    raise NonRetriableError(f"token_revoked: {error.message}") from None
                if error.code == "rate_limited" and error.retry_after_s:
                    raise RetryAfterError(error.message, error.retry_after_s) from None
                raise
            tokens = PlainTokens(
                grant.refresh_token or creds.refresh_token, grant.access_token, grant.expires_at
            )
            await db.run(
                lambda conn: store_tokens(
                    conn, services.kek, target.tenant_id, target.platform, target.account_id, tokens
                )
            )
            return {"platform": target.platform, "expiresAt": grant.expires_at}

        result: dict[str, Any] = await ctx.step.run("refresh", refresh)
        return result

    registry.add(
        Function("eager-token-refresh", eager_token_refresh, (CronTrigger("*/15 * * * *"),), retries=0)
    )
    registry.add(
        Function(
            "refresh-one-token",
            refresh_one_token,
            (EventTrigger(TOKEN_EVENT),),
            retries=3,
            concurrency=Concurrency(1, key="data.credential_id"),
        )
    )
