"""Readiness: what `/readyz` reports, computed from the database, migrations and actors."""

from __future__ import annotations

import attrs
import trio

from deneva.clock import Clock
from deneva.db import Connection, Database
from deneva.errors import DatabaseError
from deneva.sql import query
from deneva.supervisor import Supervisor

HEARTBEAT_MAX_AGE_S = 600.0
DB_PROBE_TIMEOUT_S = 2.0
_LATEST_HEARTBEAT = query("latest_heartbeat")


@attrs.frozen
class Readiness:
    ready: bool
    problems: tuple[str, ...]
    checks: dict[str, str]


@attrs.define
class HealthState:
    """What the daemon knows about itself; the HTTP layer asks it, never the actors."""

    supervisor: Supervisor
    clock: Clock
    node: str
    db: Database | None = None
    migrated: bool = False

    async def heartbeat_age_s(self) -> float | None:
        """Seconds since this node's last heartbeat (None if never); raises on a DB outage."""
        if self.db is None:
            raise DatabaseError("database not connected yet")

        async def latest(conn: Connection) -> object:
            return await conn.fetchval(_LATEST_HEARTBEAT, "scheduler", self.node, timeout=DB_PROBE_TIMEOUT_S)

        with trio.fail_after(DB_PROBE_TIMEOUT_S + 1):
            beat = await self.db.run(latest)
        if beat is None:
            return None
        age: float = self.clock.now() - beat.timestamp()  # type: ignore[attr-defined]
        return max(0.0, age)

    async def readiness(self) -> Readiness:
        problems: list[str] = []
        checks: dict[str, str] = {}
        try:
            age = await self.heartbeat_age_s()
            checks["database"] = "ok"
            if age is None:
                checks["heartbeat"] = "missing"
                problems.append("heartbeat: no heartbeat recorded for this node")
            elif age > HEARTBEAT_MAX_AGE_S:
                checks["heartbeat"] = f"stale ({age:.0f} s old)"
                problems.append(f"heartbeat: last beat {age:.0f} s ago (limit {HEARTBEAT_MAX_AGE_S:.0f} s)")
            else:
                checks["heartbeat"] = "ok"
        except (DatabaseError, trio.TooSlowError) as exc:
            checks["database"] = "unreachable"
            checks["heartbeat"] = "unknown"
            problems.append(f"database: {str(exc) or f'no answer within {DB_PROBE_TIMEOUT_S:.0f} s'}")
        checks["migrations"] = "ok" if self.migrated else "pending"
        if not self.migrated:
            problems.append("migrations: not applied")
        actor_problems = self.supervisor.problems()
        checks["actors"] = "ok" if not actor_problems else "failing"
        problems += [f"actor: {p}" for p in actor_problems]
        return Readiness(not problems, tuple(problems), checks)
