"""Fields that hold versioned objects: one nested object, or a list of them.

They name the object type rather than import its class, so classes can refer to each other
in any order and a decoded object from another registry of the same name still fits.
"""

from __future__ import annotations

from typing import Any

from schemas._field import UNSET, Field
from schemas.base import VersionedObject
from schemas.errors import ObjectFieldError


class ObjectField(Field):
    """One nested object of the named type."""

    __slots__ = ("objname",)
    holds_objects = True

    def __init__(
        self,
        objname: str,
        *,
        nullable: bool = False,
        default: Any = UNSET,
        read_only: bool = False,
    ) -> None:
        if default is not UNSET and default is not None:
            # One default object would be shared, and changed in place, by every instance.
            raise TypeError(f"an object field's default can only be None, got {default!r}")
        self.objname = objname
        super().__init__(nullable=nullable, default=default, read_only=read_only)

    def expected_text(self) -> str:
        text = f"a {self.objname} object"
        return f"{text} or None" if self.nullable else text

    def _describe_extra(self) -> str:
        return repr(self.objname)

    def from_wire(self, objname: str, value: Any) -> Any:
        if isinstance(value, VersionedObject) and self.objname == value.OBJ_NAME:
            return value
        return super().from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if isinstance(value, VersionedObject) and self.objname == value.OBJ_NAME:
            return value
        raise TypeError(type(value).__name__)


class ListOfObjectsField(Field):
    """A list of objects of the named type. `mutable`: appends and removals are tracked."""

    __slots__ = ("objname",)
    holds_objects = True
    mutable = True

    def __init__(
        self,
        objname: str,
        *,
        nullable: bool = False,
        default: Any = UNSET,
        read_only: bool = False,
    ) -> None:
        self.objname = objname
        super().__init__(nullable=nullable, default=default, read_only=read_only)

    def expected_text(self) -> str:
        text = f"a list of {self.objname} objects"
        return f"{text} or None" if self.nullable else text

    def _describe_extra(self) -> str:
        return repr(self.objname)

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, tuple):
            value = list(value)
        return self._from_wire(objname, value)

    def from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is list:
            want = self.objname
            for item in value:
                if not (isinstance(item, VersionedObject) and want == item.OBJ_NAME):
                    break
            else:
                return value
        return super().from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is not list:
            raise TypeError(type(value).__name__)
        want = self.objname
        for index, item in enumerate(value):
            if not (isinstance(item, VersionedObject) and want == item.OBJ_NAME):
                raise ObjectFieldError(
                    objname=objname,
                    field=f"{self.name}[{index}]",
                    expected=f"a {want} object",
                    value=item,
                )
        return value

    def snapshot(self, value: Any) -> Any:
        return list(value)
