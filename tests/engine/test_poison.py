"""Poison inputs never stop the engine (issue 11): a key field of any size, a row the
database refuses at claim time, a step output Postgres cannot store. Real database, the
real circuit, virtual time."""

from __future__ import annotations

import hashlib
from typing import Any

import trio
import trio.testing

from deneva.db import Database
from deneva.engine.context import Context
from deneva.engine.functions import MAX_KEY_CHARS, Concurrency, EventTrigger, Function, Registry
from tests.engine.conftest import as_owner, running_engine


def _keyed(done: list[str], failures: list[str] | None = None) -> Registry:
    registry = Registry()

    async def keyed(ctx: Context) -> None:
        await trio.sleep(1)
        done.append(ctx.data["k"][:5])

    async def on_failure(ctx: Context) -> None:
        if failures is not None:
            failures.append(ctx.data["error"])

    async def free(ctx: Context) -> None:
        done.append("free")

    registry.add(
        Function(
            "keyed",
            keyed,
            (EventTrigger("test/k"),),
            concurrency=Concurrency(1, key="data.k"),
            on_failure=on_failure,
            retries=2,
        )
    )
    registry.add(Function("free", free, (EventTrigger("test/free"),)))
    return registry


async def test_a_3kb_concurrency_key_is_stored_hashed_and_still_serialises(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    done: list[str] = []
    # 3 KB that do not compress (pglz would squeeze "aaa..." under the index's limit),
    # differing only past the prefix a hashed key keeps.
    noise = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(48))
    long_a, long_b = noise + "1", noise + "2"
    async with running_engine(db, _keyed(done), scheduler=False) as engine:
        sent = await engine.send(
            [{"name": "test/k", "data": {"k": k}} for k in (long_a, long_a, long_b)]
            + [{"name": "test/free"}, {"name": "test/k", "data": {"k": "short"}}]
        )
        for run_id in sent.run_ids:
            assert (await engine.wait_for_run(run_id, 600)).status == "succeeded"
    keys = await db.fetch(
        "SELECT concurrency_key, started_at, finished_at FROM engine_runs ORDER BY started_at"
    )
    stored = {r["concurrency_key"] for r in keys if r["concurrency_key"]}
    assert len(stored) == 3 and max(len(k) for k in stored) <= MAX_KEY_CHARS  # a, b, short
    same = [
        r for r in keys if r["concurrency_key"] and r["concurrency_key"].startswith("keyed|" + noise[:20])
    ]
    by_key: dict[str, list[Any]] = {}
    for r in same:
        by_key.setdefault(r["concurrency_key"], []).append(r)
    runs_of_a = max(by_key.values(), key=len)
    assert len(runs_of_a) == 2 and runs_of_a[0]["finished_at"] <= runs_of_a[1]["started_at"]  # limit 1
    assert sorted(done) == sorted([noise[:5]] * 3 + ["free", "short"])


async def test_a_key_row_the_database_refuses_fails_its_runs_not_every_claim(
    db: Database, database_url: str, autojump_clock: trio.testing.MockClock
) -> None:
    # A fault the database raises on one key's row (as it did for a key too large for
    # its index before keys were hashed): injected with a trigger, nothing mocked.
    await as_owner(
        database_url,
        """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN RAISE EXCEPTION 'index row size exceeds maximum' USING ERRCODE = '54000'; END $$""",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON engine_concurrency_keys "
        "FOR EACH ROW WHEN (NEW.key LIKE '%poison%') EXECUTE FUNCTION refuse_poison()",
    )
    done: list[str] = []
    failures: list[str] = []
    async with running_engine(db, _keyed(done, failures), scheduler=False) as engine:
        poison = await engine.send([{"name": "test/k", "data": {"k": "poison"}} for _ in range(2)])
        good = await engine.send([{"name": "test/k", "data": {"k": "good"}}, {"name": "test/free"}])
        for run_id in good.run_ids:
            assert (await engine.wait_for_run(run_id, 600)).status == "succeeded"
        for run_id in poison.run_ids:
            run = await engine.wait_for_run(run_id, 600)
            assert run.status == "failed" and run.attempt == 1  # not retried forever
            assert run.last_error is not None and "could not be claimed: 54000" in run.last_error
        with trio.fail_after(600):
            while len(failures) < 2:  # on_failure ran for each
                await trio.sleep(1)
    assert sorted(done) == ["free", "good"]
    assert all("could not be claimed" in f for f in failures)


async def test_a_step_output_postgres_cannot_store_fails_the_run_at_once(
    db: Database, autojump_clock: trio.testing.MockClock
) -> None:
    registry = Registry()

    async def nul(ctx: Context) -> None:
        await ctx.step.run("name", lambda: {"campaign": ["ok", "bad\x00name"]})

    async def surrogate(ctx: Context) -> str:
        return "lone \ud800"

    registry.add(Function("nul", nul, (EventTrigger("test/nul"),), retries=3))
    registry.add(Function("surrogate", surrogate, (EventTrigger("test/sur"),), retries=3))
    async with running_engine(db, registry, scheduler=False) as engine:
        a = (await engine.send({"name": "test/nul"})).run_ids[0]
        b = (await engine.send({"name": "test/sur"})).run_ids[0]
        nul_run, sur_run = await engine.wait_for_run(a, 600), await engine.wait_for_run(b, 600)
    assert (nul_run.status, nul_run.attempt) == ("failed", 1)
    assert nul_run.last_error is not None
    assert "step 'name': result.campaign[1]: contains a NUL" in nul_run.last_error
    assert (sur_run.status, sur_run.attempt) == ("failed", 1)
    assert sur_run.last_error is not None
    assert "result: contains a lone surrogate (\\ud800)" in sur_run.last_error
