"""Events from outside whose key fields cannot start the runs they trigger (issue 11):
a clear 400 naming the field, nothing of the batch stored; a key of any size is fine."""

from __future__ import annotations

import trio

from deneva.clock import TrioClock
from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.engine import Engine
from deneva.engine.functions import Concurrency, EventTrigger, Function, Registry
from deneva.health import HealthState
from deneva.http.app import create_app
from deneva.secrets import Secret
from deneva.supervisor import Supervisor

KEY = "event-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _app(db: Database) -> object:
    async def refresh(ctx: Context) -> None:
        return None

    registry = Registry()
    registry.add(
        Function(
            "refresh", refresh, (EventTrigger("t/refresh"),), concurrency=Concurrency(1, key="data.tenant")
        )
    )
    clock = TrioClock(1_767_225_600.0)
    engine = Engine(db, registry, clock, "http-test")
    health = HealthState(Supervisor(trio.Event()), clock, "node", db=db, migrated=True)
    return create_app(health, lambda: engine, Secret("DENEVA_EVENT_KEY", KEY))


async def test_an_event_without_its_key_field_is_refused_naming_it(db: Database) -> None:
    client = _app(db).test_client()  # type: ignore[attr-defined]
    batch = [{"name": "t/refresh", "data": {"tenant": "a"}}, {"name": "t/refresh", "data": {"other": 1}}]
    answer = await client.post("/api/events", json=batch, headers=AUTH)
    assert answer.status_code == 400
    assert (await answer.get_json())["error"] == (
        "refresh concurrency key: event 't/refresh' has no field 'data.tenant'"
    )
    assert await db.fetchval("SELECT count(*) FROM engine_events") == 0  # not half a batch
    assert await db.fetchval("SELECT count(*) FROM engine_runs") == 0


async def test_a_3kb_key_field_is_accepted(db: Database) -> None:
    client = _app(db).test_client()  # type: ignore[attr-defined]
    noise = "".join(f"{i * 2654435761 % 2**32:08x}" for i in range(400))
    answer = await client.post(
        "/api/events", json={"name": "t/refresh", "data": {"tenant": noise}}, headers=AUTH
    )
    assert answer.status_code == 202 and (await answer.get_json())["runs"] == 1
    key = await db.fetchval("SELECT concurrency_key FROM engine_runs")
    assert len(key) <= 200


async def test_a_batch_the_database_refuses_is_a_422_and_a_conflict_a_503(
    db: Database, database_url: str
) -> None:
    """Refused for what it holds (injected by a trigger: a check the database makes), the
    batch is not worth sending again: 422, the detail only in the log. A conflict (a
    serialization failure) may pass: 503, retry later."""
    owner = await Database.open(database_url, role=None, min_size=1)
    try:
        await owner.execute(
            """CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF NEW.name = 't/refused' THEN
                   RAISE EXCEPTION 'secret detail' USING ERRCODE = '23514';
                 END IF;
                 RAISE EXCEPTION 'conflict' USING ERRCODE = '40001';
               END $$"""
        )
        await owner.execute(
            "CREATE TRIGGER refuse_event BEFORE INSERT ON engine_events FOR EACH ROW "
            "WHEN (NEW.name IN ('t/refused', 't/conflict')) EXECUTE FUNCTION refuse_event()"
        )
    finally:
        await owner.close()
    client = _app(db).test_client()  # type: ignore[attr-defined]
    refused = await client.post("/api/events", json={"name": "t/refused"}, headers=AUTH)
    assert refused.status_code == 422
    body = await refused.get_json()
    assert "refused this batch" in body["error"] and "secret detail" not in body["error"]
    conflict = await client.post("/api/events", json={"name": "t/conflict"}, headers=AUTH)
    assert conflict.status_code == 503 and "retry later" in (await conflict.get_json())["error"]
