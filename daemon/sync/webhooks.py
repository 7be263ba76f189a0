"""Meta's change notifications (`POST /webhooks/meta`) turned into cache refreshes.

The HTTP handler checks the signature and stores the notification as one
`meta/webhook.received` event (and nothing else: it answers within milliseconds);
`meta-webhook-refresh` then maps each notified ad account to the tenants that connected
it (a cross-tenant read, as the daemon's own role) and enqueues a refresh of each of
their cached reports of that account, through `refresh-tenant-report` like every other
refresh (its coalescing joins a refresh already queued for the same report). Nothing
calls Meta here.

Which changes refresh: on `object: "ad_account"`, the fields that say an ad object's
status changed (`in_process_ad_objects`: a campaign, ad set or ad left IN_PROCESS, its
new `status_name` given; `with_issues_ad_objects`: one entered WITH_ISSUES), since a
campaign paused, resumed or stopped by an issue changes spend and delivery in every
report. The other ad account fields (`ad_recommendations`, `creative_fatigue`,
`product_set_issue`) and other objects change no cached figure: counted in the run's
output (`ignoredFields`), not refreshed. A notified account no tenant connected is
logged and listed (`unknownAccounts`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.functions import EventTrigger, Function, Registry
from deneva.sql import query
from deneva.sync.model import RefreshTarget
from deneva.sync.schedule import enqueue_refreshes

log = logging.getLogger("deneva.sync")

META_WEBHOOK_EVENT = "meta/webhook.received"
FUNCTION_ID = "meta-webhook-refresh"
REFRESHING_FIELDS = frozenset({"in_process_ad_objects", "with_issues_ad_objects"})
_UNHEALTHY = {"token_revoked": "revoked", "credential_unreadable": "unhealthy"}
_REPORTS = query("sync_meta_webhook_reports")


def notified_accounts(data: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """The ad accounts (ids without `act_`) whose notified changes call for a refresh,
    and the other changes, counted by field (or by object, for another kind of object)."""
    ignored: dict[str, int] = {}
    entries = data.get("entry") or []
    kind = data.get("object")
    if kind != "ad_account":
        ignored[f"object:{kind}"] = len(entries)
        return [], ignored
    accounts: dict[str, None] = {}
    for entry in entries:
        for change in entry.get("changes") or []:
            field = str(change.get("field"))
            if field in REFRESHING_FIELDS:
                accounts[str(entry["id"]).removeprefix("act_")] = None
            else:
                ignored[field] = ignored.get(field, 0) + 1
    return list(accounts), ignored


def _refreshes(
    rows: Sequence[Any], event_id: str, notified: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, int], list[str]]:
    """The refresh events for the rows of `sync_meta_webhook_reports`, the reports left
    alone by why, and the notified accounts no tenant connected."""
    events: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    connected = set()
    for row in rows:
        connected.add(row["notified_id"])
        reason = _UNHEALTHY.get(row["last_error_code"] or "")
        if row["report_type"] is None:
            reason = "not_cached"  # nothing cached yet: the cadence fan-out fetches it
        if reason is not None:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        target = RefreshTarget(
            row["tenant_id"], "meta", row["account_id"], row["report_type"], row["date_range"]
        )
        events.append(
            target.event(
                f"meta-webhook:{event_id}:{target.tenant_id}:{target.account_id}:"
                f"{target.report_type}:{target.date_range}"
            )
        )
    return events, skipped, [a for a in notified if a not in connected]


def register_meta_webhooks(
    registry: Registry, db_of: Callable[[], Database], platforms_of: Callable[[], Sequence[str]] | None = None
) -> None:
    """`meta-webhook-refresh`; `platforms_of()`: the platforms this daemon syncs (None: all)."""

    async def meta_webhook_refresh(ctx: Context) -> dict[str, Any]:
        accounts, ignored = notified_accounts(ctx.data)
        summary: dict[str, Any] = {"accounts": accounts, "ignoredFields": ignored, "unknownAccounts": []}
        if not accounts:
            return {"processed": 0, "skipped": {}, "failed": 0, "errors": [], **summary}
        if platforms_of is not None and "meta" not in platforms_of():
            return {
                "processed": 0,
                "skipped": {"not_synced": len(accounts)},
                "failed": 0,
                "errors": [],
                **summary,
            }
        event_id = str(ctx.event.get("id"))

        async def find() -> dict[str, Any]:
            rows = await db_of().fetch(_REPORTS, accounts)
            events, skipped, unknown = _refreshes(rows, event_id, accounts)
            return {"events": events, "skipped": skipped, "unknown": unknown}

        found = await ctx.step.run("find-reports", find)
        if found["unknown"]:
            log.warning(
                "Meta notified changes on ad accounts no tenant has connected; nothing to refresh",
                extra={"accounts": found["unknown"], "event_id": event_id},
            )
        fan_out = await enqueue_refreshes(ctx, "refresh", found["events"], found["skipped"])
        return {**fan_out.as_json(), **summary, "unknownAccounts": found["unknown"]}

    registry.add(Function(FUNCTION_ID, meta_webhook_refresh, (EventTrigger(META_WEBHOOK_EVENT),), retries=3))
