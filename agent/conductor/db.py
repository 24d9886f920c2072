"""The object backend's database: one async engine per process, and its failures as typed errors.

Two back ends, one code path: SQLite through aiosqlite (the embedded default, a file) and
PostgreSQL through asyncpg (production; many conductors share one database). Statements run
in autocommit mode: every store operation is a single statement, atomic on its own, so an
explicit BEGIN/COMMIT would only add two round trips to each save.

    StoreError
    ├── DatabaseUnavailable   the database cannot be reached or is busy (retryable)
    ├── DatabaseError         the database refused a statement (a value out of range, ...)
    ├── NotStored             an object name with no table
    └── FieldNotQueryable     a query or compare-and-set on a field stored as JSON
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent.conductor.errors import (
    DatabaseError,
    DatabaseUnavailable,
)

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_POOL_SIZE = 10


def database_url(target: str | Path) -> sa.URL:
    """The SQLAlchemy URL for `target`: a URL as given, or a file path meaning SQLite.

    `postgresql://` gets the asyncpg driver and `sqlite://` aiosqlite, so an operator can
    write the URL every other tool understands.
    """
    text = str(target)
    if "://" not in text:
        return sa.URL.create("sqlite+aiosqlite", database=str(Path(text).absolute()))
    url = sa.make_url(text)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    elif url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    if url.drivername not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise DatabaseError(
            url=url.render_as_string(hide_password=True),
            reason=f"driver {url.drivername!r} is not supported "
            "(use a file path, sqlite+aiosqlite:// or postgresql+asyncpg://)",
        )
    return url


def create_engine(
    target: str | Path,
    *,
    pool_size: int = POSTGRES_POOL_SIZE,
    connect_args: Mapping[str, Any] | None = None,
    autocommit: bool = True,
) -> AsyncEngine:
    """An autocommit engine for `target` (a file path or a URL, see `database_url`);
    `autocommit=False` for migrations, whose DDL runs in one transaction on PostgreSQL.

    SQLite gets WAL (readers never wait for the writer), a busy timeout (two writers queue
    instead of failing at once; the wait happens in aiosqlite's thread) and foreign keys.
    PostgreSQL gets a pool of `pool_size` connections; no pre-ping, which would cost a round
    trip per checkout: a dead connection fails that one statement as DatabaseUnavailable.
    Dispose the engine (`await engine.dispose()`) when done.
    """
    url = database_url(target)
    args = dict(connect_args or {})
    isolation = "AUTOCOMMIT" if autocommit else "SERIALIZABLE"
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            # SQLite creates the file, not its directory (an agent's instances_path is made by
            # its first spawn); one mkdir when the engine is built, not per connection. One
            # that cannot be made shows as the database being unavailable, at first use.
            with contextlib.suppress(OSError):
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, isolation_level=isolation, connect_args=args)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        isolation_level=isolation if autocommit else "READ COMMITTED",
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=args,
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL with NORMAL is durable against an application crash; FULL only adds an fsync
        # per commit against power loss, which the resync after a restart covers.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


@contextlib.contextmanager
def database_errors(url: sa.URL) -> Iterator[None]:
    """Translate the driver's errors, once, into DatabaseUnavailable / DatabaseError naming
    the database at `url` (without its password)."""
    where = url.render_as_string(hide_password=True)
    try:
        yield
    except exc.DBAPIError as error:
        reason = _reason(error)
        if _unavailable(error, reason):
            raise DatabaseUnavailable(url=where, reason=reason) from error
        raise DatabaseError(url=where, reason=reason) from error
    except OSError as error:  # asyncpg: connection refused, host unreachable, timeout
        raise DatabaseUnavailable(url=where, reason=str(error) or type(error).__name__) from error


# SQLite reports a missing table or column as an OperationalError too: a schema that was not
# upgraded, which waiting does not cure.
_SCHEMA_PROBLEMS = ("no such table", "no such column", "has no column", "syntax error")


def _unavailable(error: exc.DBAPIError, reason: str) -> bool:
    if error.connection_invalidated or isinstance(error, exc.InterfaceError):
        return True
    return isinstance(error, exc.OperationalError) and not any(
        problem in reason for problem in _SCHEMA_PROBLEMS
    )


def _reason(error: exc.DBAPIError) -> str:
    return str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
