"""The engine's retention API (what the janitor's prune pass calls): one bounded statement
per call, finished runs only, the tables it knows only."""

from __future__ import annotations

import pytest

from deneva.clock import SystemClock, as_datetime
from deneva.db import Database
from deneva.engine.builtin import default_registry
from deneva.engine.engine import Engine
from deneva.engine.errors import EngineError

NOW = 1_767_225_600.0


async def test_a_prune_statement_deletes_at_most_its_limit_of_finished_runs(db: Database) -> None:
    engine = Engine(db, default_registry(), SystemClock(), "janitor")
    await db.execute(
        "INSERT INTO engine_runs (id, function_id, status, event, max_attempts, run_at, created_at, "
        "finished_at) SELECT gen_random_uuid(), 'deneva-noop', s, '{}', 1, $1, $1, $1 "
        "FROM unnest(ARRAY['succeeded', 'failed', 'queued']) AS s, generate_series(1, 25)",
        as_datetime(NOW - 86400),
    )
    assert await engine.prune_runs("succeeded", NOW, 10) == (10, 0)
    assert await engine.prune_runs("succeeded", NOW, 10) == (10, 0)
    assert await engine.prune_runs("succeeded", NOW, 10) == (5, 0)
    assert await engine.prune_runs("succeeded", NOW - 2 * 86400, 10) == (0, 0)  # not old enough
    counts = await db.fetch("SELECT status, count(*) AS n FROM engine_runs GROUP BY 1 ORDER BY 1")
    assert [(r["status"], r["n"]) for r in counts] == [("failed", 25), ("queued", 25)]
    with pytest.raises(EngineError, match="only succeeded, failed, cancelled runs"):
        await engine.prune_runs("queued", NOW, 10)
    with pytest.raises(EngineError, match="table 'engine_runs'"):
        await engine.prune_table("engine_runs", NOW, 10)
