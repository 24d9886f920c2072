"""Stored objects: the local bodies of `create`/`save`/`refresh`/`get_by_key` and their store.

Without an indirection API, a remotable method of a `PersistentObject` runs here and talks to
the `ObjectStore` in use (a ContextVar, like the indirection). The agent's object backend
provides the real store; the store sees only plain data: {field: wire value}, nested objects
as `ObjectPrimitive`s, keyed by object name and the value of the class's `OBJ_KEY` field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, Self

from schemas.base import VersionedObject
from schemas.compat import ObjectPrimitive, from_primitive
from schemas.errors import NoObjectStore, ObjectNotFound
from schemas.registry import ObjectRegistry, default_registry
from schemas.remotable import remotable, remotable_classmethod


class ObjectStore(Protocol):
    """Persistence by object name + key. Values are wire values; the store copies what it keeps.

    `expected` makes a write compare-and-set: {field: allowed stored values}; the write happens
    atomically only if every named field holds one of its allowed values (a missing object or
    field counts as None), else `unexpected_state(...)` is raised and nothing changes.
    """

    async def get(self, objname: str, key: str) -> dict[str, Any] | None:
        """The stored fields of one object, or None."""
        ...

    async def put_changes(
        self,
        objname: str,
        key: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Merge `changes` into the stored object, creating it if it is new."""
        ...

    async def list(
        self, objname: str, where: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The stored fields of every object of that name whose fields equal `where`'s values
        (all of them when None), in key order."""
        ...

    async def delete(self, objname: str, key: str) -> bool:
        """Remove the object; whether there was one."""
        ...


_store: ContextVar[tuple[ObjectStore, ObjectRegistry] | None] = ContextVar(
    "virtactor_object_store", default=None
)


@contextlib.contextmanager
def use_object_store(
    store: ObjectStore, registry: ObjectRegistry = default_registry
) -> Iterator[ObjectStore]:
    """Within the block, local remotable bodies use `store` (objects rebuilt via `registry`)."""
    token = _store.set((store, registry))
    try:
        yield store
    finally:
        _store.reset(token)


def current_object_store(objname: str, method: str) -> tuple[ObjectStore, ObjectRegistry]:
    """The store in use, or NoObjectStore naming the call that needed one."""
    found = _store.get()
    if found is None:
        raise NoObjectStore(objname=objname, method=method)
    return found


class PersistentObject(VersionedObject):
    """An object with an `OBJ_KEY` field that lives in an object store.

    Subclasses set `OBJ_KEY`; their typed lookups (`Instance.get_by_uuid`) call `_obj_get`.
    """

    __slots__ = ()

    def _obj_key(self) -> str:
        key = self.OBJ_KEY
        if key is None:
            raise TypeError(f"{type(self).__qualname__} must set OBJ_KEY")
        return str(getattr(self, key))

    @remotable
    async def create(self) -> None:
        """Store every set field as a new object; afterwards nothing counts as changed."""
        store, _ = current_object_store(self.OBJ_NAME, "create")
        data = self.to_primitive().data
        await store.put_changes(self.OBJ_NAME, self._obj_key(), data)
        self.obj_reset_changes(recursive=True)

    @remotable(changes_only=True)
    async def save(self) -> None:
        """Store the changed fields only (nested objects that changed go whole)."""
        await self._obj_save_changes("save", None)

    async def _obj_save_changes(
        self, method: str, expected: Mapping[str, Sequence[Any]] | None
    ) -> None:
        store, _ = current_object_store(self.OBJ_NAME, method)
        changed = self.obj_what_changed()
        if changed or expected:
            data = self.to_primitive().data
            changes = {name: data[name] for name in changed if name in data}
            await store.put_changes(self.OBJ_NAME, self._obj_key(), changes, expected)
        self.obj_reset_changes(recursive=True)

    @remotable
    async def destroy(self) -> None:
        """Remove the stored object; ObjectNotFound if there is none."""
        store, _ = current_object_store(self.OBJ_NAME, "destroy")
        if not await store.delete(self.OBJ_NAME, self._obj_key()):
            raise ObjectNotFound(objname=self.OBJ_NAME, key=self._obj_key())

    @remotable
    async def refresh(self) -> None:
        """Reload every field from the store; local changes are dropped."""
        fresh = await type(self)._obj_get(self.OBJ_NAME, self._obj_key())
        self._values = fresh._values
        self._orig = None
        self.obj_reset_changes(recursive=True)

    @remotable_classmethod
    async def get_by_key(cls, ctx: Any, key: str) -> Self:
        """The stored object whose `OBJ_KEY` field is `key`, or ObjectNotFound."""
        return await cls._obj_get(cls.OBJ_NAME, key)

    @remotable_classmethod
    async def list_all(cls, ctx: Any) -> list[Self]:
        """Every stored object of this type."""
        return await cls._obj_find("list_all", None)

    @classmethod
    async def _obj_find(cls, method: str, where: Mapping[str, Any] | None) -> list[Self]:
        """The stored objects whose fields equal `where`'s values (the local body of typed
        queries such as `Instance.get_by_host`)."""
        store, registry = current_object_store(cls.OBJ_NAME, method)
        rows = await store.list(cls.OBJ_NAME, where)
        return [cls._obj_rebuild(registry, row) for row in rows]

    @classmethod
    async def _obj_get(cls, objname: str, key: str) -> Self:
        store, registry = current_object_store(objname, "get")
        row = await store.get(objname, key)
        if row is None:
            raise ObjectNotFound(objname=objname, key=key)
        return cls._obj_rebuild(registry, row)

    @classmethod
    def _obj_rebuild(cls, registry: ObjectRegistry, row: dict[str, Any]) -> Self:
        obj = from_primitive(ObjectPrimitive(cls.OBJ_NAME, cls.VERSION, row), registry)
        assert isinstance(obj, cls)
        return obj
