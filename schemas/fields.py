"""Field types for declaring versioned objects.

Declare a field as an annotated class attribute; the annotation is the Python type callers
see, the call builds the field object that validates:

    memory_mb: int = fields.Integer()
    host: str | None = fields.String(nullable=True)
    metadata: dict[str, str] = fields.Dict(fields.String(), default={})
    flavor: Flavor = fields.Object("Flavor")

The constructors are typed as returning `Any` (like `dataclasses.field`) so the annotation,
not the field object, is what a type checker uses for `obj.host`. The classes themselves
(`StringField`, ...) are exported for isinstance checks and subclassing.

Every field takes `nullable` (None is a value), `default` (returned and stored when an unset
field is read) and `read_only` (can be set once).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from schemas._containers import DictField, ListField, SetField
from schemas._field import UNSET, Field
from schemas._objfields import ListOfObjectsField, ObjectField
from schemas._scalars import (
    BooleanField,
    DateTimeField,
    EnumField,
    FloatField,
    IntegerField,
    IPAddressField,
    IPNetworkField,
    MACAddressField,
    StringField,
    UUIDField,
)

__all__ = [
    "UNSET",
    "UUID",
    "Boolean",
    "BooleanField",
    "DateTime",
    "DateTimeField",
    "Dict",
    "DictField",
    "Enum",
    "EnumField",
    "Field",
    "Float",
    "FloatField",
    "IPAddress",
    "IPAddressField",
    "IPNetwork",
    "IPNetworkField",
    "Integer",
    "IntegerField",
    "List",
    "ListField",
    "ListOfObjects",
    "ListOfObjectsField",
    "MACAddress",
    "MACAddressField",
    "Object",
    "ObjectField",
    "Set",
    "SetField",
    "String",
    "StringField",
    "UUIDField",
]


def String(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A str."""
    return StringField(nullable=nullable, default=default, read_only=read_only)


def Integer(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A 64-bit int; coerces integral floats and decimal strings."""
    return IntegerField(nullable=nullable, default=default, read_only=read_only)


def Float(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A float; coerces ints and numeric strings."""
    return FloatField(nullable=nullable, default=default, read_only=read_only)


def Boolean(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A bool (only a bool)."""
    return BooleanField(nullable=nullable, default=default, read_only=read_only)


def UUID(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A UUID held as canonical text; coerces uuid.UUID and other spellings."""
    return UUIDField(nullable=nullable, default=default, read_only=read_only)


def DateTime(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A timezone-aware datetime, normalised to UTC."""
    return DateTimeField(nullable=nullable, default=default, read_only=read_only)


def Enum(
    values: type[enum.StrEnum] | Iterable[str],
    *,
    nullable: bool = False,
    default: Any = UNSET,
    read_only: bool = False,
) -> Any:
    """One of a fixed set of strings (a StrEnum class or an iterable of str)."""
    return EnumField(values, nullable=nullable, default=default, read_only=read_only)


def IPAddress(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """An ipaddress.IPv4Address or IPv6Address; coerces text."""
    return IPAddressField(nullable=nullable, default=default, read_only=read_only)


def IPNetwork(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """An ipaddress.IPv4Network or IPv6Network without host bits; coerces text."""
    return IPNetworkField(nullable=nullable, default=default, read_only=read_only)


def MACAddress(*, nullable: bool = False, default: Any = UNSET, read_only: bool = False) -> Any:
    """A MAC address as lower-case colon-separated text."""
    return MACAddressField(nullable=nullable, default=default, read_only=read_only)


def Dict(
    element: Field, *, nullable: bool = False, default: Any = UNSET, read_only: bool = False
) -> Any:
    """A dict of str to `element` values."""
    return DictField(element, nullable=nullable, default=default, read_only=read_only)


def List(
    element: Field, *, nullable: bool = False, default: Any = UNSET, read_only: bool = False
) -> Any:
    """A list of `element` values."""
    return ListField(element, nullable=nullable, default=default, read_only=read_only)


def Set(
    element: Field, *, nullable: bool = False, default: Any = UNSET, read_only: bool = False
) -> Any:
    """A set of `element` values."""
    return SetField(element, nullable=nullable, default=default, read_only=read_only)


def Object(
    objname: str, *, nullable: bool = False, default: Any = UNSET, read_only: bool = False
) -> Any:
    """One nested object named `objname`."""
    return ObjectField(objname, nullable=nullable, default=default, read_only=read_only)


def ListOfObjects(
    objname: str, *, nullable: bool = False, default: Any = UNSET, read_only: bool = False
) -> Any:
    """A list of objects named `objname`."""
    return ListOfObjectsField(objname, nullable=nullable, default=default, read_only=read_only)
