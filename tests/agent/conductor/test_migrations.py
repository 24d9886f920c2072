"""`upgrade_db`: from an empty database, and from the previous revision with rows in it; the
rows and columns checked in SQL, the objects read back through the store."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.conductor import SqlObjectStore, create_engine, schema_revision, upgrade_db
from agent.conductor.schema import HEAD_REVISION
from schemas import use_object_store
from schemas.objects import Instance, Service

UUID = "7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f"
SERVICE_UUID = "3c9e1d2f-4b5a-4c6d-8e7f-901a2b3c4d5e"
TABLES = {
    "alembic_version",
    "compute_nodes",
    "instances",
    "migrations",
    "provider_firewall_rules",
    "security_group_memberships",
    "security_group_rules",
    "security_groups",
    "services",
}


async def inspect(engine: AsyncEngine) -> dict[str, object]:
    def read(sync: sa.Connection) -> dict[str, object]:
        inspector = sa.inspect(sync)
        return {
            "tables": set(inspector.get_table_names()),
            "instance columns": {c["name"] for c in inspector.get_columns("instances")},
            "service indexes": {i["name"] for i in inspector.get_indexes("services")},
        }

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def test_upgrade_from_empty_creates_every_table(database_url: str) -> None:
    await upgrade_db(database_url)
    engine = create_engine(database_url)
    try:
        schema = await inspect(engine)
        assert await schema_revision(engine) == HEAD_REVISION
    finally:
        await engine.dispose()
    assert schema["tables"] == TABLES
    assert set(Instance.obj_fields()) == schema["instance columns"]
    assert schema["service indexes"] == {"ix_services_host_binary"}


async def test_an_upgrade_of_a_current_database_changes_nothing(migrated_url: str) -> None:
    await upgrade_db(migrated_url)
    engine = create_engine(migrated_url)
    try:
        assert await schema_revision(engine) == HEAD_REVISION
    finally:
        await engine.dispose()


async def test_an_empty_database_has_no_revision(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert await schema_revision(engine) is None
    finally:
        await engine.dispose()


async def test_rows_written_at_the_previous_revision_survive_the_upgrade(
    database_url: str,
) -> None:
    await upgrade_db(database_url, "0001")
    engine = create_engine(database_url)
    try:
        assert await schema_revision(engine) == "0001"
        assert (await inspect(engine))["service indexes"] == {"ix_services_host"}
        async with engine.connect() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO instances (uuid, name, host, vm_state, task_state, memory_mb,"
                    " vcpus, root_gb, metadata, launched_at) VALUES (:uuid, 'vm-1', 'compute-1',"
                    " 'active', NULL, 512, 1, 1, :metadata, :launched_at)"
                ).bindparams(
                    sa.bindparam("metadata", type_=sa.JSON()),
                    sa.bindparam("launched_at", type_=sa.DateTime(timezone=True)),
                ),
                {
                    "uuid": UUID,
                    "metadata": {"role": "db"},
                    "launched_at": datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
                },
            )
            await conn.execute(
                sa.text(
                    'INSERT INTO services (uuid, host, "binary", report_count, disabled)'
                    " VALUES (:uuid, 'compute-1', 'virtactor-compute', 7, false)"
                ),
                {"uuid": SERVICE_UUID},
            )
        await upgrade_db(database_url)
        assert await schema_revision(engine) == HEAD_REVISION
        assert (await inspect(engine))["service indexes"] == {"ix_services_host_binary"}
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text("SELECT uuid, name FROM instances"))).all()
        assert [tuple(row) for row in rows] == [(UUID, "vm-1")]
        with use_object_store(SqlObjectStore(engine)):
            instance = await Instance.get_by_uuid(None, UUID)
            service = await Service.get_by_host_and_binary(None, "compute-1", "virtactor-compute")
    finally:
        await engine.dispose()
    assert (instance.name, instance.host, instance.memory_mb) == ("vm-1", "compute-1", 512)
    assert instance.metadata == {"role": "db"}
    assert instance.launched_at == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    assert instance.task_state is None and instance.locked is False
    assert (service.uuid, service.report_count, service.disabled) == (SERVICE_UUID, 7, False)
