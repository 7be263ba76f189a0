"""Readiness: what `/readyz` reports, from the database, migrations, actors and the canary."""

from __future__ import annotations

import attrs
import trio

from deneva.canary import MAX_AGE_S, Beat, latest_beat
from deneva.clock import Clock
from deneva.db import Database
from deneva.engine.engine import ENGINE, Engine
from deneva.errors import DatabaseError
from deneva.supervisor import Supervisor

HEARTBEAT_MAX_AGE_S = MAX_AGE_S
DB_PROBE_TIMEOUT_S = 2.0


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
    engine: Engine | None = None

    async def latest_beat(self) -> Beat | None:
        """The engine canary's latest beat (None if none yet); raises on a DB outage."""
        if self.db is None:
            raise DatabaseError("database not connected yet")
        with trio.fail_after(DB_PROBE_TIMEOUT_S):
            return await latest_beat(self.db)

    async def _paused_note(self) -> str:
        """Why the canary may be stale on purpose: the whole engine is paused."""
        if self.engine is None:
            return ""
        try:
            with trio.fail_after(DB_PROBE_TIMEOUT_S):
                paused = [p for p in await self.engine.paused() if p.function_id == ENGINE]
        except (DatabaseError, trio.TooSlowError):
            return ""
        if not paused:
            return ""
        return (
            f"; the engine is paused since {paused[0].paused_at.isoformat()} (deneva functions resume --all)"
        )

    async def readiness(self) -> Readiness:
        problems: list[str] = []
        checks: dict[str, str] = {}
        try:
            beat = await self.latest_beat()
            checks["database"] = "ok"
            age = None if beat is None else beat.age_s(self.clock.now())
            if age is None:
                checks["heartbeat"] = "missing"
                problems.append("heartbeat: no heartbeat run has got through the engine yet")
            elif age > HEARTBEAT_MAX_AGE_S:
                checks["heartbeat"] = f"stale ({age:.0f} s old)"
                problems.append(
                    f"heartbeat: last heartbeat run {age:.0f} s ago (limit {HEARTBEAT_MAX_AGE_S:.0f} s): "
                    "the scheduler, dispatcher or workers are stuck" + await self._paused_note()
                )
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
