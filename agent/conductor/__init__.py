"""The object backend (conductor role): versioned objects stored in SQLite or PostgreSQL.

See docs/conductor.md.
"""

from __future__ import annotations

from agent.conductor.db import (
    DatabaseError,
    DatabaseUnavailable,
    StoreError,
    create_engine,
)
from agent.conductor.schema import schema_revision, upgrade_db
from agent.conductor.store import SqlObjectStore

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "SqlObjectStore",
    "StoreError",
    "create_engine",
    "schema_revision",
    "upgrade_db",
]
