"""Fixtures of the schemas tests: an in-memory object store and indirection APIs."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import settings

from schemas import (
    ObjectRegistry,
    VersionedObject,
    decode,
    default_registry,
    dispatch_object_action,
    dispatch_object_class_action,
    encode,
    use_indirection,
    use_object_store,
)
from schemas.memory_store import MemoryObjectStore

# The decoder fuzz tests run this profile: many examples in CI, a quick pass locally.
settings.register_profile("schemas-ci", max_examples=20_000, deadline=None, derandomize=False)
settings.register_profile("schemas-dev", max_examples=1_000, deadline=None)
FUZZ_PROFILE = "schemas-ci" if os.environ.get("CI") == "true" else "schemas-dev"


class MemoryStore(MemoryObjectStore):
    """The reference in-memory store, recording every write as (object, key, changes)."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[tuple[str, str, dict[str, Any]]] = []

    async def put_changes(
        self,
        objname: str,
        key: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        await super().put_changes(objname, key, changes, expected)
        self.puts.append((objname, key, copy.deepcopy(dict(changes))))


class WireIndirection:
    """An indirection that does what the agent's does, minus the bus: every call and reply
    crosses the codec, and the far side runs the local bodies against its own store."""

    def __init__(self, store: MemoryStore, registry: ObjectRegistry = default_registry) -> None:
        self.store = store
        self.registry = registry
        self.sent: list[VersionedObject] = []
        self.class_calls: list[tuple[str, str, str]] = []

    async def object_action(
        self, obj: VersionedObject, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        remote = decode(encode([obj, list(args), kwargs]), registry=self.registry)
        self.sent.append(remote[0].obj_clone())
        with use_object_store(self.store, self.registry):
            updates, result = await dispatch_object_action(
                remote[0], method, tuple(remote[1]), remote[2]
            )
        return decode(encode([updates, result]), registry=self.registry)  # type: ignore[no-any-return]

    async def object_class_action(
        self, objname: str, objver: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        self.class_calls.append((objname, objver, method))
        remote_args = decode(encode([list(args), kwargs]), registry=self.registry)
        with use_object_store(self.store, self.registry):
            result = await dispatch_object_class_action(
                self.registry, objname, objver, method, tuple(remote_args[0]), remote_args[1]
            )
        return decode(encode(result), registry=self.registry)


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    memory = MemoryStore()
    with use_object_store(memory):
        yield memory


@pytest.fixture
def wire() -> Iterator[WireIndirection]:
    api = WireIndirection(MemoryStore())
    with use_indirection(api):
        yield api
