"""The tables, the objects and the migrations agree: a field without a column, or a column
without a migration, fails here naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.conductor import tables
from agent.conductor.columns import missing_columns, stored_objects
from agent.conductor.db import create_engine
from agent.conductor.schema import HEAD_REVISION, schema_revision, script_head, upgrade_db
from schemas import PersistentObject, default_registry


def copy(column: sa.Column[Any]) -> sa.Column[Any]:
    return sa.Column(column.name, column.type, primary_key=column.primary_key)


def test_every_persistent_object_has_a_table() -> None:
    persistent = {
        name
        for name in default_registry
        if issubclass(default_registry.lookup(name), PersistentObject)
    }
    assert persistent == set(tables.OBJECT_TABLES)


def test_every_field_of_every_persistent_object_has_a_fitting_column() -> None:
    assert missing_columns() == []


def test_a_field_without_a_column_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [copy(c) for c in tables.services.columns if c.name != "last_seen_up"]
    monkeypatch.setitem(
        tables.OBJECT_TABLES, "Service", sa.Table("services", sa.MetaData(), *columns)
    )
    assert missing_columns() == ["Service.last_seen_up (no column)"]
    with pytest.raises(ValueError, match=r"Service\.last_seen_up \(no column\)"):
        stored_objects()


def test_a_column_of_the_wrong_type_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [
        sa.Column("report_count", sa.String()) if c.name == "report_count" else copy(c)
        for c in tables.services.columns
    ]
    monkeypatch.setitem(
        tables.OBJECT_TABLES, "Service", sa.Table("services", sa.MetaData(), *columns)
    )
    assert missing_columns() == ["Service.report_count (VARCHAR is no integer column)"]


def test_the_newest_revision_is_the_one_the_code_expects() -> None:
    assert script_head() == HEAD_REVISION


async def test_the_migrated_database_is_exactly_the_tables_module(
    object_engine: AsyncEngine,
) -> None:
    def differences(sync: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(sync, opts={"compare_type": True})
        return list(compare_metadata(context, tables.metadata))

    async with object_engine.connect() as conn:
        assert await conn.run_sync(differences) == []
    assert await schema_revision(object_engine) == HEAD_REVISION


async def test_a_sqlite_database_in_a_directory_not_made_yet_is_created(tmp_path: Path) -> None:
    target = tmp_path / "not" / "made" / "yet" / "objects.sqlite"
    await upgrade_db(str(target))
    engine = create_engine(target)
    try:
        assert target.exists()
    finally:
        await engine.dispose()
