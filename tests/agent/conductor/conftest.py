"""Fixtures of the object backend's tests: every database test runs on SQLite and PostgreSQL.

`database_url` is a fresh, empty database per test: a file under tmp_path, or a PostgreSQL
database created for the test and dropped after it (from VIRTACTOR_TEST_PG_URL, whose
database is only used to connect). Under CI=true an unreachable PostgreSQL fails the test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.conductor import SqlObjectStore, create_engine, upgrade_db
from tests.conftest import missing_component

PG_URL = os.environ.get(
    "VIRTACTOR_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _asyncpg_dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_connection(admin: sa.URL) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_asyncpg_dsn(admin), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        missing_component(
            f"PostgreSQL at {admin.host}:{admin.port} ({exc})",
            "deploy/local/services.sh start (or make test)",
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind, as a URL (SQLite: a file path)."""
    if request.param == "sqlite":
        yield str(tmp_path / "conductor.sqlite")
        return
    admin = sa.make_url(PG_URL)
    name = f"virtactor_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin_connection(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await _admin_connection(admin)
        try:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """`database_url` upgraded to the newest schema."""
    await upgrade_db(database_url)
    return database_url


@pytest.fixture
async def object_engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `migrated_url`."""
    engine = create_engine(migrated_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sql_store(object_engine: AsyncEngine) -> SqlObjectStore:
    return SqlObjectStore(object_engine)
