"""`ObjectList`: an object whose one field, `objects`, is a list of objects of one type.

Lists travel as objects (with a name and version) so a list's element version can be
back-levelled through the list's relationship map like any nested object.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar, overload

from schemas.base import VersionedObject

_T = TypeVar("_T", bound=VersionedObject)


class ObjectList(VersionedObject, Generic[_T]):
    """Base of list objects; a subclass declares
    `objects: list[Thing] = fields.ListOfObjects("Thing", default=[])`."""

    __slots__ = ()

    objects: list[_T]

    def __iter__(self) -> Iterator[_T]:
        return iter(self.objects)

    def __len__(self) -> int:
        return len(self.objects)

    def __bool__(self) -> bool:
        # An empty list object is still a value (unlike an unset field): keep it truthy.
        return True

    @overload
    def __getitem__(self, index: int) -> _T: ...
    @overload
    def __getitem__(self, index: slice) -> list[_T]: ...
    def __getitem__(self, index: int | slice) -> _T | list[_T]:
        return self.objects[index]
