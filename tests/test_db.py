"""The database layer: one crossing per unit of work, typed errors, RLS, LISTEN, recovery."""

from __future__ import annotations

import uuid

import pytest
import trio

from deneva.db import Connection, Database
from deneva.errors import DatabaseUnavailable, QueryError, UniqueViolation
from deneva.pgembed import APP_LOGIN


async def _add_tenant(db: Database, name: str) -> str:
    return str(await db.fetchval("INSERT INTO tenants (name) VALUES ($1) RETURNING id", name))


async def _add_audit(db: Database, tenant_id: str, event: str) -> None:
    await db.execute(
        "INSERT INTO audit_log (tenant_id, event_type) VALUES ($1, $2)", uuid.UUID(tenant_id), event
    )


async def test_pool_connections_run_as_the_system_role_not_the_owner(db: Database) -> None:
    assert await db.fetchval("SELECT current_user") == "deneva_system"
    # RESET ALL on release must not hand a superuser connection to the next caller.
    for _ in range(5):
        assert await db.fetchval("SELECT current_user") == "deneva_system"
        assert await db.fetchval("SELECT usesuper FROM pg_user WHERE usename = current_user") is None


async def test_the_pool_logs_in_as_the_app_login_which_cannot_step_around_row_level_security(
    db: Database,
) -> None:
    row = await db.fetchrow(
        "SELECT session_user AS login, current_user AS acting, rolsuper, rolbypassrls "
        "FROM pg_roles WHERE rolname = session_user"
    )
    assert row is not None and (row["login"], row["acting"]) == (APP_LOGIN, "deneva_system")
    assert not row["rolsuper"] and not row["rolbypassrls"]
    assert await db.check_login("the test's pool") == APP_LOGIN
    acme = await _add_tenant(db, "acme")
    owner = await db.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'tenants'")

    async def reset_role(conn: Connection) -> list[str]:
        await conn.execute("RESET ROLE")  # back to the login itself: it has no rights of its own
        return [r["name"] for r in await conn.fetch("SELECT name FROM tenants")]

    with pytest.raises(QueryError, match="permission denied for table tenants"):
        await db.run(reset_role)
    with pytest.raises(QueryError, match="permission denied for table tenants"):
        await db.tenant_transaction(acme, reset_role)

    async def become_owner(conn: Connection) -> None:
        await conn.execute(f'SET ROLE "{owner}"')

    with pytest.raises(QueryError, match="permission denied to set role"):
        await db.run(become_owner)
    assert await db.fetchval("SELECT current_user") == "deneva_system"


async def test_a_released_connection_comes_back_without_the_tenant_or_role_it_was_left_with(
    app_url: str,
) -> None:
    db = await Database.open(app_url, min_size=1, max_size=1)  # one connection: the same one again
    try:

        async def leave_session_state(conn: Connection) -> int:
            await conn.execute("SELECT set_config('deneva.tenant_id', $1, false)", str(uuid.uuid4()))
            await conn.execute("SET ROLE deneva_app")
            return int(conn.get_server_pid())

        async def session_state(conn: Connection) -> tuple[int, str, str | None]:
            acting = await conn.fetchval("SELECT current_user")
            tenant = await conn.fetchval("SELECT current_setting('deneva.tenant_id', true)")
            return int(conn.get_server_pid()), acting, tenant

        pid = await db.run(leave_session_state)
        again, acting, tenant = await db.run(session_state)
        assert again == pid
        assert acting == "deneva_system" and not tenant
    finally:
        await db.close()


async def test_tenant_transaction_sees_only_its_own_tenant_rows(db: Database) -> None:
    acme = await _add_tenant(db, "acme")
    globex = await _add_tenant(db, "globex")
    await _add_audit(db, acme, "acme.thing")
    await _add_audit(db, globex, "globex.thing")

    async def everything(conn: Connection) -> list[str]:
        # No WHERE clause on purpose: row-level security must do the filtering.
        rows = await conn.fetch("SELECT event_type FROM audit_log ORDER BY id")
        return [r["event_type"] for r in rows]

    assert await db.tenant_transaction(acme, everything) == ["acme.thing"]
    assert await db.tenant_transaction(globex, everything) == ["globex.thing"]
    assert await db.transaction(everything) == ["acme.thing", "globex.thing"]

    async def tenants_visible(conn: Connection) -> list[str]:
        return [r["name"] for r in await conn.fetch("SELECT name FROM tenants ORDER BY name")]

    assert await db.tenant_transaction(acme, tenants_visible) == ["acme"]


async def test_tenant_cannot_write_rows_for_another_tenant(db: Database) -> None:
    acme = await _add_tenant(db, "acme")
    globex = await _add_tenant(db, "globex")

    async def forge(conn: Connection) -> None:
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, event_type) VALUES ($1, 'forged')", uuid.UUID(globex)
        )

    with pytest.raises(QueryError, match="row-level security"):
        await db.tenant_transaction(acme, forge)


async def test_a_failed_tenant_transaction_rolls_back_and_leaves_the_connection_as_it_was(
    db: Database,
) -> None:
    acme = await _add_tenant(db, "acme")

    async def write_then_fail(conn: Connection) -> None:
        await conn.execute(
            "INSERT INTO audit_log (tenant_id, event_type) VALUES ($1, 'rolled.back')", uuid.UUID(acme)
        )
        raise RuntimeError("boom")

    for _ in range(3):  # more times than the pool has idle connections
        with pytest.raises(RuntimeError, match="boom"):
            await db.tenant_transaction(acme, write_then_fail)
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE event_type = 'rolled.back'") == 0
    # Back on the system role, outside any transaction, with no tenant set.
    state = await db.fetchrow(
        "SELECT current_user AS who, current_setting('deneva.tenant_id', true) AS tenant"
    )
    assert state is not None and state["who"] == "deneva_system" and not state["tenant"]
    with pytest.raises(QueryError, match="not a UUID"):
        await db.tenant_transaction("acme'; DROP TABLE tenants; --", write_then_fail)


async def test_audit_log_is_insert_only_for_the_daemon(db: Database) -> None:
    acme = await _add_tenant(db, "acme")
    await _add_audit(db, acme, "kept")
    with pytest.raises(QueryError, match="permission denied"):
        await db.execute("UPDATE audit_log SET event_type = 'changed'")
    with pytest.raises(QueryError, match="permission denied"):
        await db.execute("DELETE FROM audit_log")
    assert await db.fetchval("SELECT event_type FROM audit_log") == "kept"


async def test_archive_function_moves_old_audit_rows_preserving_the_count(db: Database) -> None:
    acme = await _add_tenant(db, "acme")
    await db.execute(
        "INSERT INTO audit_log (tenant_id, event_type, created_at) "
        "SELECT $1, 'old', now() - interval '13 months' FROM generate_series(1, 5)",
        uuid.UUID(acme),
    )
    await _add_audit(db, acme, "recent")
    moved = await db.fetchval("SELECT deneva_archive_audit_log(now() - interval '12 months', 3)")
    assert moved == 3
    moved = await db.fetchval("SELECT deneva_archive_audit_log(now() - interval '12 months', 3)")
    assert moved == 2
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 1
    assert await db.fetchval("SELECT count(*) FROM audit_log_archive") == 5


async def test_unique_violation_is_typed(db: Database) -> None:
    await _add_tenant(db, "acme")
    with pytest.raises(UniqueViolation):
        await _add_tenant(db, "acme")


async def test_bad_sql_is_a_query_error_naming_the_problem(db: Database) -> None:
    with pytest.raises(QueryError, match="no_such_table"):
        await db.fetch("SELECT * FROM no_such_table")


async def test_a_transaction_is_one_unit(db: Database) -> None:
    async def half_done(conn: Connection) -> None:
        await conn.execute("INSERT INTO tenants (name) VALUES ('first')")
        await conn.execute("INSERT INTO tenants (name) VALUES ('first')")

    with pytest.raises(UniqueViolation):
        await db.transaction(half_done)
    assert await db.fetchval("SELECT count(*) FROM tenants") == 0


async def test_listen_delivers_notifications_to_a_trio_channel(db: Database) -> None:
    async with db.listen("deneva_test") as notes:
        with trio.fail_after(10):
            assert await notes.receive() == ("deneva_test", "")  # connected: re-check signal
            await db.execute("SELECT pg_notify('deneva_test', 'hello')")
            assert await notes.receive() == ("deneva_test", "hello")


async def test_listen_reconnects_after_its_connection_is_killed(db: Database, database_url: str) -> None:
    owner = await Database.open(database_url, role=None, min_size=1)
    async with db.listen("deneva_test") as notes:
        with trio.fail_after(20):
            assert await notes.receive() == ("deneva_test", "")
            await owner.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'deneva-listen'"
                " AND datname = current_database()"
            )
            assert await notes.receive() == ("deneva_test", "")  # reconnected
            await db.execute("SELECT pg_notify('deneva_test', 'again')")
            assert await notes.receive() == ("deneva_test", "again")
    await owner.close()


async def test_pool_recovers_when_its_connections_are_killed(db: Database, database_url: str) -> None:
    await db.fetchval("SELECT 1")
    owner = await Database.open(database_url, role=None, min_size=1)
    await owner.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'deneva' AND datname = current_database() AND pid <> pg_backend_pid()"
    )
    await owner.close()
    # Pooled connections that died are replaced; at worst one call sees the outage, typed.
    results = []
    for _ in range(5):
        try:
            results.append(await db.fetchval("SELECT 41 + 1"))
        except DatabaseUnavailable:
            results.append("unavailable")
    assert results[-3:] == [42, 42, 42]


async def test_cancelling_a_call_cancels_the_query(db: Database) -> None:
    with trio.move_on_after(0.2) as scope:
        await db.execute("SELECT pg_sleep(30)")
    assert scope.cancelled_caught
    assert (
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'"
        )
        == 0
    )


async def test_many_concurrent_calls_each_get_their_own_answer(db: Database) -> None:
    # Crossings are batched both ways (AsyncioThread): calls submitted together, and
    # answers delivered together, must still reach the right caller, errors included.
    answers: dict[int, object] = {}

    async def one(n: int) -> None:
        try:
            answers[n] = await db.fetchval("SELECT $1::int * 2", n)
        except QueryError:
            answers[n] = "error"

    async def failing(n: int) -> None:
        try:
            await db.fetchval("SELECT 1 / ($1::int - $1::int)", n)
        except QueryError as exc:
            answers[n] = "division" if "division by zero" in str(exc) else str(exc)

    async with trio.open_nursery() as nursery:
        for n in range(300):
            nursery.start_soon(failing if n % 7 == 0 else one, n)
    assert answers == {n: ("division" if n % 7 == 0 else n * 2) for n in range(300)}


async def test_unreachable_database_is_a_typed_error() -> None:
    with pytest.raises(DatabaseUnavailable):
        await Database.open("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
