"""`SqlObjectStore`: the `schemas.store.ObjectStore` protocol on SQLite or PostgreSQL.

Values in and out are wire values, as with any store; `columns` turns them into column values
and back. Every operation is one statement in its own (autocommit) transaction:

- `put_changes` is an upsert: INSERT ... ON CONFLICT (uuid) DO UPDATE SET <the changed
  columns only>. Two creators of one object race safely: the first inserts, the second
  merges its fields into the row, as `schemas.memory_store.MemoryObjectStore` does. Two
  writers of different fields of one object never lose each other's columns.
- With `expected` it is a compare-and-set in the same statement: UPDATE ... WHERE uuid = :key
  AND task_state IN (...) [OR task_state IS NULL], or, when every expectation allows None
  (which a missing object satisfies), the upsert with that condition on its DO UPDATE. The
  database evaluates the condition on the row it locks, so of two racing compare-and-sets
  exactly one wins. Only when no row changed does a second statement read the actual values,
  for `unexpected_state(...)`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.selectable import NamedFromClause

from agent.conductor.columns import StoredField, StoredObject, stored_objects
from agent.conductor.db import database_errors
from agent.conductor.errors import FieldNotQueryable, NotStored, StoreContention
from schemas.errors import ObjectFieldError, UnknownFieldError, unexpected_state
from schemas.registry import ObjectRegistry, default_registry

# A compare-and-set retries only when the row matched again between its UPDATE and the
# read-back, i.e. another writer moved the state away and back meanwhile.
CAS_ATTEMPTS = 5


class SqlObjectStore:
    """An ObjectStore on `engine` (see `agent.conductor.db.create_engine`).

    The tables must exist (`agent.conductor.upgrade_db`). Database failures raise
    `DatabaseUnavailable` (retryable) or `DatabaseError`; an object name with no table
    `NotStored`; a field with no column `UnknownFieldError`. Cancelling a call cancels its
    statement: a statement the database had already committed stays committed.
    """

    def __init__(self, engine: AsyncEngine, registry: ObjectRegistry = default_registry) -> None:
        self.engine = engine
        self._objects = stored_objects(registry)
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert
        # Key order as Python sorts strings, whatever the database's collation.
        self._key_collation = "C" if postgres else "BINARY"

    async def get(self, objname: str, key: str) -> dict[str, Any] | None:
        """The stored fields of one object, or None."""
        stored = self._stored(objname)
        query = sa.select(*_columns(stored.fields.values())).where(stored.key.column == key)
        rows = await self._fetch(query)
        return _row(stored, rows[0]) if rows else None

    async def put_changes(
        self,
        objname: str,
        key: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Merge `changes` into the stored object, creating it if it is new; with `expected`,
        only if each named field holds one of its allowed values (else `unexpected_state`)."""
        stored = self._stored(objname)
        values = self._values(stored, key, changes)
        if not expected:
            await self._rowcount(self._upsert(stored, key, values, None))
            return
        condition = sa.and_(*(self._allowed(stored, f, a) for f, a in expected.items()))
        creates = all(None in allowed for allowed in expected.values())
        for _ in range(CAS_ATTEMPTS):
            if creates:
                statement = self._upsert(stored, key, values, condition)
            else:
                keycol = stored.key.column
                statement = (
                    sa.update(stored.table)
                    .where(keycol == key, condition)
                    .values(values or {keycol.name: keycol})
                )
            if await self._rowcount(statement) == 1:
                return
            actual = await self._get_fields(stored, key, tuple(expected))
            for field, allowed in expected.items():
                if actual.get(field) not in allowed:
                    raise unexpected_state(objname, key, field, list(allowed), actual.get(field))
        raise StoreContention(objname=objname, key=key)

    async def list(
        self, objname: str, where: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The stored objects whose fields equal `where`'s values (None matches a NULL), in
        key order."""
        stored = self._stored(objname)
        query = sa.select(*_columns(stored.fields.values()))
        for name, value in (where or {}).items():
            query = query.where(self._allowed(stored, name, [value]))
        query = query.order_by(stored.key.column.collate(self._key_collation))
        return [_row(stored, row) for row in await self._fetch(query)]

    async def delete(self, objname: str, key: str) -> bool:
        """Remove the object; whether there was one."""
        stored = self._stored(objname)
        statement = sa.delete(stored.table).where(stored.key.column == key)
        return await self._rowcount(statement) > 0

    # -- statements ----------------------------------------------------------------------

    def _upsert(
        self,
        stored: StoredObject,
        key: str,
        values: dict[str, Any],
        condition: sa.ColumnElement[bool] | None,
    ) -> sa.Executable:
        keyname = stored.key.name
        insert = self._insert(stored.table).values({**values, keyname: key})
        if not values and condition is None:
            return insert.on_conflict_do_nothing(index_elements=[keyname])
        # With nothing to change, setting the key to itself still tests the condition.
        names = list(values) or [keyname]
        excluded = _excluded(stored.table)
        return insert.on_conflict_do_update(
            index_elements=[keyname],
            set_={name: excluded.c[name] for name in names},
            where=condition,
        )

    def _allowed(
        self, stored: StoredObject, name: str, allowed: Sequence[Any]
    ) -> sa.ColumnElement[bool]:
        """`name`'s column holds one of `allowed` (None: is NULL)."""
        field = self._field(stored, name)
        if not field.queryable:
            raise FieldNotQueryable(objname=stored.objname, field=name)
        column = field.column
        values = [field.to_db(v) for v in allowed if v is not None]
        tests: list[sa.ColumnElement[bool]] = []
        if len(values) == 1:
            tests.append(column == values[0])
        elif values:
            tests.append(column.in_(values))
        if None in allowed:
            tests.append(column.is_(None))
        return sa.or_(*tests) if tests else sa.false()

    async def _get_fields(
        self, stored: StoredObject, key: str, names: Sequence[str]
    ) -> dict[str, Any]:
        fields = [self._field(stored, name) for name in names]
        rows = await self._fetch(sa.select(*_columns(fields)).where(stored.key.column == key))
        return _row(stored, rows[0], fields) if rows else {}

    def _values(self, stored: StoredObject, key: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, value in changes.items():
            field = self._field(stored, name)
            if field is stored.key:
                if value != key:
                    raise ObjectFieldError(
                        objname=stored.objname, field=name, expected=f"the key {key!r}", value=value
                    )
                continue
            values[field.column.name] = field.to_db(value)
        return values

    def _stored(self, objname: str) -> StoredObject:
        try:
            return self._objects[objname]
        except KeyError:
            raise NotStored(objname=objname) from None

    def _field(self, stored: StoredObject, name: str) -> StoredField:
        try:
            return stored.fields[name]
        except KeyError:
            raise UnknownFieldError(objname=stored.objname, field=name) from None

    # -- execution -----------------------------------------------------------------------

    async def _rowcount(self, statement: sa.Executable) -> int:
        with database_errors(self.engine.url):
            async with self.engine.connect() as conn:
                result = await conn.execute(statement)
                return result.rowcount

    async def _fetch(self, query: sa.Select[Any]) -> Sequence[sa.Row[Any]]:
        with database_errors(self.engine.url):
            async with self.engine.connect() as conn:
                result = await conn.execute(query)
                return result.all()


def _columns(fields: Any) -> list[sa.Column[Any]]:
    return [field.column for field in fields]


def _row(
    stored: StoredObject, row: sa.Row[Any], fields: Sequence[StoredField] | None = None
) -> dict[str, Any]:
    """The wire fields of a row; a NULL is None or leaves the field unset (`null_is_none`)."""
    out: dict[str, Any] = {}
    for field, value in zip(fields or stored.fields.values(), row, strict=True):
        if value is not None:
            out[field.name] = field.from_db(value)
        elif field.null_is_none:
            out[field.name] = None
    return out


@functools.cache
def _excluded(table: sa.Table) -> NamedFromClause:
    """The row an upsert proposed (`excluded`, in SQLite's and PostgreSQL's ON CONFLICT), made
    once per table: `Insert.excluded` builds it again for every statement, and its column
    collection was most of a save's time on the event loop (bench/scale.py)."""
    return sa.alias(table, name="excluded")
