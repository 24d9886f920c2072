"""The object backend (conductor role): versioned objects stored in SQLite or PostgreSQL.

See docs/conductor.md. The database names load on first use, so an agent that only talks
to a conductor never imports SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.conductor.db import create_engine
    from agent.conductor.errors import DatabaseError, DatabaseUnavailable, StoreError
    from agent.conductor.schema import schema_revision, upgrade_db
    from agent.conductor.store import SqlObjectStore

_LAZY = {
    "DatabaseError": "agent.conductor.errors",
    "DatabaseUnavailable": "agent.conductor.errors",
    "StoreError": "agent.conductor.errors",
    "create_engine": "agent.conductor.db",
    "schema_revision": "agent.conductor.schema",
    "upgrade_db": "agent.conductor.schema",
    "SqlObjectStore": "agent.conductor.store",
}

__all__ = [
    "DatabaseError",
    "DatabaseUnavailable",
    "SqlObjectStore",
    "StoreError",
    "create_engine",
    "schema_revision",
    "upgrade_db",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agent.conductor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
