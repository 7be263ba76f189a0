"""When a credential needs the operator to connect it again, and the command that does it.

A credential needs a reconnect when the platform refused it (`token_revoked`: Google
`invalid_grant`, Meta 190/102, TikTok 40101-40109; no retry or refresh can cure it), or,
for Meta, when its token expires within 7 days: Meta user tokens last about 60 days and
cannot be extended past that without the user. `deneva connect PLATFORM --tenant NAME
--account ID` (the browser flow) replaces it in place; the next sync marks it healthy.
`get_sync_status`, `/admin/metrics/sync` and the logs say so in these words.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Final

import attrs

log = logging.getLogger("deneva.sync")
META_EXPIRY_WINDOW_S: Final = 7 * 86_400.0
RECONNECT_NEEDED: Final = "reconnect needed"


@attrs.frozen
class Reconnect:
    reason: str
    command: str

    def as_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "command": self.command}


def connect_command(platform: str, tenant: str, account_id: str) -> str:
    return f"deneva connect {platform} --tenant {tenant} --account {account_id}"


def reconnect_needed(
    platform: str,
    tenant: str,
    account_id: str,
    last_error_code: str | None,
    expires_at: datetime | None,
    now: float,
) -> Reconnect | None:
    command = connect_command(platform, tenant, account_id)
    if last_error_code == "token_revoked":
        return Reconnect(f"{platform} refused the stored credential (revoked or expired)", command)
    if platform == "meta" and expires_at is not None and expires_at.timestamp() - now <= META_EXPIRY_WINDOW_S:
        when = expires_at.strftime("%Y-%m-%d %H:%M UTC")
        verb = "expired" if expires_at.timestamp() <= now else "expires"
        return Reconnect(
            f"the Meta token {verb} {when}; Meta tokens cannot be extended without the user", command
        )
    return None


def health_status(healthy: bool, reconnect: Reconnect | None) -> str:
    """One word for a credential: healthy, unhealthy (its last sync failed) or reconnect needed."""
    if reconnect is not None:
        return RECONNECT_NEEDED
    return "healthy" if healthy else "unhealthy"


def log_reconnect_needed(platform: str, tenant: str | None, account_id: str, why: str) -> None:
    """The log line an operator acts on: which credential, why, and the command."""
    name = tenant or "TENANT"
    log.warning(
        f"{RECONNECT_NEEDED}: {platform} account {account_id} of {name}",
        extra={
            "platform": platform,
            "tenant": name,
            "account": account_id,
            "reason": why[:300],
            "command": connect_command(platform, name, account_id),
        },
    )
