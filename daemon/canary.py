"""The engine's canary (seed 000 §G): proof that the whole path works, not that a loop
somewhere is alive.

`heartbeat` is an ordinary engine function on a cron (every 5 minutes): its tick is
recorded by a scheduler, claimed by a dispatcher, run by a worker, and only then is the
beat written (`heartbeats`, source `canary`). So when any part of that path is stuck (the
scheduler, the dispatcher, the workers, the database), no beat is written and the beat
grows old: `/readyz` and `/admin/health/scheduler` answer 503 once it is 10 minutes old.
The canary actor asks for one beat when the daemon starts (event `deneva/canary`), so a
fresh daemon is ready within moments, and watches the beat's age.

The engine is one however many replicas share the database: the latest beat of any node
counts, and each beat names the node whose worker ran it. Apart from it, the canary actor
of each node writes that node's own beat (source `replica`) each time it looks: the
console's "replicas seen", one row per node.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from deneva.clock import Clock, as_datetime
from deneva.db import Connection, Database
from deneva.engine.context import Context
from deneva.engine.functions import CronTrigger, EventTrigger, Function, Registry
from deneva.sql import query

HEARTBEAT = "heartbeat"
CANARY_EVENT = "deneva/canary"
SOURCE = "canary"
REPLICA = "replica"  # each node's own beat, written by its canary actor
CRON = "*/5 * * * *"
MAX_AGE_S = 600.0  # a beat older than this: the engine is stuck (two ticks missed)
_BEAT = query("canary_beat")
_LATEST = query("canary_latest_beat")


@attrs.frozen
class Beat:
    node: str
    at: datetime

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.at.timestamp())


@attrs.frozen
class CanaryServices:
    db: Database
    clock: Clock
    node: str


async def record_beat(db: Database, node: str, at: float) -> None:
    await db.execute(_BEAT, SOURCE, node, as_datetime(at))


async def latest_beat(db: Database) -> Beat | None:
    row = await db.fetchrow(_LATEST, SOURCE)
    return None if row is None else Beat(row["node"], row["last_beat_at"])


async def replica_beat(db: Database, node: str, at: float) -> Beat | None:
    """Record that `node` is up at `at`, and read the canary's latest beat: one crossing."""

    async def beat_and_read(conn: Connection) -> Beat | None:
        await conn.execute(_BEAT, REPLICA, node, as_datetime(at))
        row = await conn.fetchrow(_LATEST, SOURCE)
        return None if row is None else Beat(row["node"], row["last_beat_at"])

    return await db.run(beat_and_read)


def register_canary(registry: Registry, services_of: Callable[[], CanaryServices]) -> Function:
    async def heartbeat(ctx: Context) -> dict[str, Any]:
        services = services_of()
        now = services.clock.now()
        await record_beat(services.db, services.node, now)
        # How late the beat came after it was asked for (a tick, or the start-up request).
        lag_ms = max(0, int(now * 1000) - int(ctx.event.get("ts", now * 1000)))
        return {"node": services.node, "lagMs": lag_ms}

    return registry.add(
        Function(
            HEARTBEAT,
            heartbeat,
            (CronTrigger(CRON, missed="once"), EventTrigger(CANARY_EVENT)),
            retries=0,
            timeout_s=60,
        )
    )
