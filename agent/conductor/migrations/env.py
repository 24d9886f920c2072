"""Alembic's environment for the object backend's database.

`agent.conductor.upgrade_db(url)` runs it with the URL in `config.attributes["url"]`; the
`alembic` command line (for writing a new revision: `alembic -c <ini> revision
--autogenerate`) with `sqlalchemy.url` from its ini file. Online only: migrations run on an
engine from `agent.conductor.db.create_engine`, so SQLite gets the same pragmas as the store.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from agent.conductor.db import create_engine
from agent.conductor.tables import metadata

config = context.config


def run_migrations(connection: Connection) -> None:
    # Batch mode: SQLite alters a table by copying it, which later revisions may need.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations(url: str) -> None:
    engine = create_engine(url, autocommit=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the object backend's migrations run online only (no --sql)")
# upgrade_db runs this in a worker thread of its own: asyncio.run starts that thread's loop.
asyncio.run(
    run_async_migrations(
        str(config.attributes.get("url") or config.get_main_option("sqlalchemy.url"))
    )
)
