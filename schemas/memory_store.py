"""`MemoryObjectStore`: an `ObjectStore` in a dict, the protocol's reference behaviour (the
SQL store of agent/conductor is tested against the same cases), for objects that need not
outlive their process: tests, and remotable bodies run apart from any database."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.errors import unexpected_state


class MemoryObjectStore:
    """Keeps {(object name, key): fields}. Copies in and out, as a database would, so no
    caller ever holds what the store holds. Each method runs without awaiting, so on one
    event loop a compare-and-set is atomic."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    async def get(self, objname: str, key: str) -> dict[str, Any] | None:
        row = self.rows.get((objname, key))
        return copy.deepcopy(row) if row is not None else None

    async def put_changes(
        self,
        objname: str,
        key: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        stored = self.rows.get((objname, key), {})
        for field, allowed in (expected or {}).items():
            if stored.get(field) not in allowed:
                raise unexpected_state(objname, key, field, list(allowed), stored.get(field))
        self.rows.setdefault((objname, key), {}).update(copy.deepcopy(dict(changes)))

    async def list(
        self, objname: str, where: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(row)
            for (name, _key), row in sorted(self.rows.items())
            if name == objname and all(row.get(f) == v for f, v in (where or {}).items())
        ]

    async def delete(self, objname: str, key: str) -> bool:
        return self.rows.pop((objname, key), None) is not None
