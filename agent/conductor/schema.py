"""Bringing a database to this release's schema: Alembic's migrations in `migrations/`.

`virtactor conductor --upgrade-db` calls `upgrade_db(url)`; the conductor then checks
`schema_revision(engine) == HEAD_REVISION` before it serves. Revisions only ever add: a
conductor of the previous release keeps working on a database upgraded for the next one
(it selects the columns it knows by name).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from agent.conductor.db import database_errors, database_url

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0003"


def alembic_config(url: str | Path) -> Config:
    """Alembic's configuration for the database at `url` (a file path or a URL), with no
    ini file: the scripts are this package's, wherever it is installed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = database_url(url).render_as_string(hide_password=False)
    return config


async def upgrade_db(url: str | Path, revision: str = "head") -> None:
    """Apply the migrations up to `revision` (the newest by default) to the database at
    `url`, creating the tables in an empty one; a no-op on a current database.

    Runs in a worker thread with its own event loop (Alembic is synchronous and reads its
    scripts from disk). Cancelling the await does not stop a migration in progress: it
    commits or rolls back in its thread. Raises DatabaseUnavailable when the database cannot
    be reached.
    """
    config = alembic_config(url)
    with database_errors(database_url(url)):
        await asyncio.to_thread(command.upgrade, config, revision)


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None if no migration ever ran on it."""
    with database_errors(engine.url):
        async with engine.connect() as conn:
            exists = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
            if not exists:
                return None
            result = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            return result.scalar_one_or_none()


def script_head() -> str | None:
    """The newest revision among the scripts (HEAD_REVISION, checked by a test)."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
