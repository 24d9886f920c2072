"""SqlObjectStore behaves as the reference MemoryStore, on SQLite and on PostgreSQL, and its
compare-and-set and merges hold when separate connections race."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.conductor import SqlObjectStore, create_engine
from agent.conductor.errors import DatabaseUnavailable, FieldNotQueryable, NotStored
from schemas import (
    ObjectFieldError,
    UnexpectedTaskStateError,
    UnknownFieldError,
    use_indirection,
    use_object_store,
)
from schemas.objects import Instance, RequestContext, Service
from tests.schemas import samples
from tests.schemas import test_store as memory_cases
from tests.schemas.conftest import WireIndirection

CTX = RequestContext(request_id="req-sql")
UUID = samples.INSTANCE_UUID


class RecordingStore(SqlObjectStore):
    """Records the writes that succeeded, as MemoryStore.puts does."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.puts: list[tuple[str, str, dict[str, Any]]] = []

    async def put_changes(
        self,
        objname: str,
        key: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        await super().put_changes(objname, key, changes, expected)
        self.puts.append((objname, key, dict(changes)))


MEMORY_CASES = [
    case
    for name, case in sorted(vars(memory_cases).items())
    if name.startswith("test_") and inspect.iscoroutinefunction(case)
]


@pytest.mark.parametrize("via", ["local", "wire"])
@pytest.mark.parametrize("case", MEMORY_CASES, ids=lambda case: case.__name__)
async def test_the_sql_store_passes_every_memory_store_case(
    object_engine: AsyncEngine, case: Callable[[Any], Awaitable[None]], via: str
) -> None:
    store = RecordingStore(object_engine)
    if via == "local":
        with use_object_store(store):
            await case(store)
    else:
        with use_indirection(WireIndirection(store)):  # type: ignore[arg-type]
            await case(store)


async def stored(store: SqlObjectStore, **overrides: Any) -> Instance:
    with use_object_store(store):
        instance = samples.instance(**overrides)
        await instance.create()
        return await Instance.get_by_uuid(CTX, instance.uuid)


async def test_an_object_reads_back_equal_to_what_was_created(sql_store: SqlObjectStore) -> None:
    created = samples.instance(task_state="spawning", access_ip_v6="2001:db8::7")
    with use_object_store(sql_store):
        await created.create()
        again = await Instance.get_by_uuid(CTX, UUID)
        node = samples.compute_node(host_ip="192.0.2.9", cpu_allocation_ratio=float("inf"))
        await node.create()
        node_again = await type(node).get_by_uuid(CTX, node.uuid)
    assert again == created
    assert not again.obj_what_changed()
    assert node_again == node


async def test_a_save_writes_only_the_changed_columns(sql_store: SqlObjectStore) -> None:
    instance = await stored(sql_store)
    async with sql_store.engine.connect() as conn:
        await conn.execute(sa.text("UPDATE instances SET display_name = 'set-in-sql'"))
    instance.host = "compute-2"
    with use_object_store(sql_store):
        await instance.save()
        again = await Instance.get_by_uuid(CTX, UUID)
    assert (again.host, again.display_name) == ("compute-2", "set-in-sql")


async def test_put_changes_of_a_few_fields_is_one_statement(
    sql_store: SqlObjectStore, object_engine: AsyncEngine
) -> None:
    await stored(sql_store, task_state="pausing")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.split(maxsplit=1)[0])

    sa.event.listen(object_engine.sync_engine, "before_cursor_execute", record)
    try:
        await sql_store.put_changes("Instance", UUID, {"host": "h", "node": "n", "locked": True})
        assert statements == ["INSERT"]
        statements.clear()
        await sql_store.put_changes(
            "Instance", UUID, {"task_state": None}, {"task_state": ["pausing"]}
        )
        assert statements == ["UPDATE"]
        statements.clear()
        with pytest.raises(UnexpectedTaskStateError):
            await sql_store.put_changes(
                "Instance", UUID, {"task_state": None}, {"task_state": ["pausing"]}
            )
        assert statements == ["UPDATE", "SELECT"]  # the read-back names the actual state
    finally:
        sa.event.remove(object_engine.sync_engine, "before_cursor_execute", record)


class CountingConnection(asyncpg.Connection):
    """Counts the simple queries asyncpg sends: BEGIN and COMMIT are among them."""

    simple_queries: ClassVar[list[str]] = []

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> str:
        self.simple_queries.append(query)
        return await super().execute(query, *args, **kwargs)


async def test_a_save_runs_outside_any_explicit_transaction(migrated_url: str) -> None:
    """No BEGIN/COMMIT round trips around the one statement: autocommit."""
    postgres = migrated_url.startswith("postgresql")
    engine = create_engine(
        migrated_url, connect_args={"connection_class": CountingConnection} if postgres else {}
    )
    store = SqlObjectStore(engine)
    in_transaction: list[bool] = []

    def after(conn: Any, *args: Any) -> None:
        driver = conn.connection.driver_connection
        if not postgres:
            in_transaction.append(driver.in_transaction)

    sa.event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        await stored(store)
        CountingConnection.simple_queries.clear()
        await store.put_changes("Instance", UUID, {"host": "h"}, {"task_state": [None]})
        await store.put_changes("Instance", UUID, {"node": "n"})
    finally:
        await engine.dispose()
    assert CountingConnection.simple_queries == []
    assert not any(in_transaction)


async def test_racing_compare_and_sets_let_exactly_one_win(migrated_url: str) -> None:
    """Two agents, each with its own engine, move the same task from None at once."""
    engines = [create_engine(migrated_url) for _ in range(2)]
    stores = [SqlObjectStore(engine) for engine in engines]
    try:
        for round_ in range(10):
            uuid = f"00000000-0000-4000-8000-{round_:012d}"
            await stored(stores[0], uuid=uuid, task_state=None)
            copies = [await stored_copy(store, uuid) for store in stores]
            ready = asyncio.Barrier(2)

            async def claim(
                store: SqlObjectStore, copy: Instance, task: str, ready: asyncio.Barrier = ready
            ) -> str:
                copy.task_state = task
                copy.node = f"node-of-{task}"
                with use_object_store(store):
                    await ready.wait()
                    await copy.save(expected_task_state=[None])
                return task

            results = await asyncio.gather(
                claim(stores[0], copies[0], "pausing"),
                claim(stores[1], copies[1], "rebooting"),
                return_exceptions=True,
            )
            winners = [r for r in results if isinstance(r, str)]
            losers = [r for r in results if isinstance(r, UnexpectedTaskStateError)]
            assert len(winners) == 1 and len(losers) == 1, results
            assert losers[0].actual == winners[0]
            row = await sql_row(engines[0], "SELECT task_state, node FROM instances", uuid)
            assert row == (winners[0], f"node-of-{winners[0]}")
    finally:
        for engine in engines:
            await engine.dispose()


async def stored_copy(store: SqlObjectStore, uuid: str) -> Instance:
    with use_object_store(store):
        return await Instance.get_by_uuid(CTX, uuid)


async def sql_row(engine: AsyncEngine, select: str, uuid: str) -> tuple[Any, ...]:
    async with engine.connect() as conn:
        result = await conn.execute(sa.text(f"{select} WHERE uuid = :uuid"), {"uuid": uuid})
        return tuple(result.one())


async def test_competing_saves_of_different_fields_lose_no_update(migrated_url: str) -> None:
    """Two agents save the same instance over and over, each its own fields."""
    engines = [create_engine(migrated_url) for _ in range(2)]
    stores = [SqlObjectStore(engine) for engine in engines]
    try:
        await stored(stores[0])
        copies = [await stored_copy(store, UUID) for store in stores]

        async def agent(store: SqlObjectStore, copy: Instance, field: str) -> None:
            with use_object_store(store):
                for i in range(25):
                    setattr(copy, field, f"{field}-{i}")
                    copy.metadata = {**copy.metadata, field: str(i)}
                    await copy.save()
                    await asyncio.sleep(0)

        await asyncio.gather(
            agent(stores[0], copies[0], "display_name"), agent(stores[1], copies[1], "node")
        )
        row = await sql_row(engines[0], "SELECT display_name, node FROM instances", UUID)
        assert row == ("display_name-24", "node-24")
    finally:
        for engine in engines:
            await engine.dispose()


async def test_two_creators_of_one_object_both_succeed_and_merge(migrated_url: str) -> None:
    engines = [create_engine(migrated_url) for _ in range(2)]
    stores = [SqlObjectStore(engine) for engine in engines]
    try:
        ready = asyncio.Barrier(2)

        async def create(store: SqlObjectStore, **fields: str) -> None:
            with use_object_store(store):
                instance = samples.instance(**fields)
                await ready.wait()
                await instance.create()

        await asyncio.gather(
            create(stores[0], display_name="from-a"), create(stores[1], node="from-b")
        )
        row = await sql_row(
            engines[0],
            "SELECT (SELECT count(*) FROM instances), display_name, node FROM instances",
            UUID,
        )
        assert row == (1, "from-a", "from-b")
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_missing_object_with_expected_none_is_created(sql_store: SqlObjectStore) -> None:
    await sql_store.put_changes("Instance", UUID, {"host": "h1"}, {"task_state": [None, "x"]})
    assert await sql_store.get("Instance", UUID) == {"uuid": UUID, "host": "h1"}


async def test_a_missing_object_expected_in_a_state_is_not_created(
    sql_store: SqlObjectStore,
) -> None:
    with pytest.raises(UnexpectedTaskStateError) as caught:
        await sql_store.put_changes("Instance", UUID, {"host": "h1"}, {"task_state": ["x"]})
    assert str(caught.value) == (
        f"Instance {UUID}: task_state is None, expected one of ['x']; nothing saved"
    )
    assert await sql_store.get("Instance", UUID) is None


async def test_queries_by_host_and_instance_use_an_index(
    sql_store: SqlObjectStore, object_engine: AsyncEngine
) -> None:
    captured: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        captured.append((statement, parameters))

    sa.event.listen(object_engine.sync_engine, "before_cursor_execute", record)
    try:
        await sql_store.list("Instance", {"host": "compute-1"})
        await sql_store.list("Migration", {"instance_uuid": UUID})
        await sql_store.list("Service", {"host": "compute-1", "binary": "virtactor-compute"})
    finally:
        sa.event.remove(object_engine.sync_engine, "before_cursor_execute", record)
    plans = [await query_plan(object_engine, sql, params) for sql, params in captured]
    assert "ix_instances_host_node" in plans[0]
    assert "ix_migrations_instance_uuid" in plans[1]
    assert "ix_services_host_binary" in plans[2]


async def query_plan(engine: AsyncEngine, statement: str, parameters: Any) -> str:
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            # The tables are tiny: without this the planner rightly prefers a scan.
            await conn.exec_driver_sql("SET enable_seqscan = off")
            result = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        else:
            result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(row) for row in result.all())


async def test_services_are_found_by_host_and_binary(sql_store: SqlObjectStore) -> None:
    with use_object_store(sql_store):
        for uuid, binary in [(samples.NODE_UUID, "virtactor-compute"), (UUID, "other")]:
            await Service(uuid=uuid, host="compute-1", binary=binary).create()
        found = await Service.get_by_host_and_binary(CTX, "compute-1", "virtactor-compute")
    assert found.uuid == samples.NODE_UUID


async def test_an_object_with_no_table_is_refused(sql_store: SqlObjectStore) -> None:
    with pytest.raises(NotStored) as caught:
        await sql_store.get("Flavor", "m1.small")
    assert str(caught.value) == "Flavor objects are not stored by the object backend (no table)"


async def test_a_field_with_no_column_is_refused(sql_store: SqlObjectStore) -> None:
    with pytest.raises(UnknownFieldError) as caught:
        await sql_store.put_changes("Instance", UUID, {"colour": "blue"})
    assert str(caught.value) == "Instance has no field 'colour'"


async def test_a_query_on_a_json_field_is_refused(sql_store: SqlObjectStore) -> None:
    with pytest.raises(FieldNotQueryable) as caught:
        await sql_store.list("Instance", {"metadata": {}})
    assert str(caught.value) == (
        "Instance.metadata is stored as JSON and cannot be matched in a query"
    )


async def test_an_integer_beyond_the_column_is_refused_before_the_database(
    sql_store: SqlObjectStore,
) -> None:
    with pytest.raises(ObjectFieldError) as caught:
        await sql_store.put_changes("Instance", UUID, {"memory_mb": 2**63})
    assert str(caught.value) == (
        "Instance.memory_mb: expected an integer in the signed 64-bit range (the column's), "
        f"got {2**63}"
    )
    assert await sql_store.get("Instance", UUID) is None


async def test_delete_says_whether_there_was_an_object(sql_store: SqlObjectStore) -> None:
    await stored(sql_store)
    assert await sql_store.delete("Instance", UUID) is True
    assert await sql_store.delete("Instance", UUID) is False


async def test_an_unreachable_database_raises_database_unavailable(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("postgresql"):
        target = str(sa.make_url(database_url).set(port=1))
    else:
        blocker = tmp_path / "a-file"  # the database's directory cannot be made under it
        blocker.write_text("")
        target = str(blocker / "conductor.sqlite")
    engine = create_engine(target)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await SqlObjectStore(engine).get("Instance", UUID)
    finally:
        await engine.dispose()
    assert caught.value.retryable
    assert str(caught.value).startswith(
        f"the object database at {engine.url.render_as_string(hide_password=True)} is unavailable: "
    )
