"""Which column holds which field, and how a wire value becomes a column value and back.

`stored_objects()` joins each persistent object's declared fields to its table in
`tables.OBJECT_TABLES`: the mapping the store runs on. A field's type decides its column's
kind (text, integer, float, boolean, timestamp, or JSON for nested objects and containers);
`missing_columns()` names each field with no column or a column of the wrong kind, which is
what a new field without a migration looks like. A field in `tables.JOINED_FIELDS` has no
column: the object's own lookups fill it from other tables.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import sqlalchemy as sa

from agent.conductor.primitive_json import from_json, to_json
from agent.conductor.tables import JOINED_FIELDS, OBJECT_TABLES
from schemas import fields
from schemas.base import VersionedObject
from schemas.errors import ObjectFieldError
from schemas.registry import ObjectRegistry, default_registry

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_TEXT_FIELDS = (fields.StringField, fields.UUIDField, fields.EnumField, fields.MACAddressField)
_KIND_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "text": sa.String,
    "address": sa.String,
    "network": sa.String,
    "integer": sa.BigInteger,
    "float": sa.Double,
    "boolean": sa.Boolean,
    "timestamp": sa.DateTime,
    "json": sa.JSON,
}


def field_kind(field: fields.Field) -> str:
    """The column kind of a field: scalars get typed columns, everything else JSON."""
    if isinstance(field, _TEXT_FIELDS):
        return "text"
    if isinstance(field, fields.IPAddressField):
        return "address"  # text: readable in SQL, where the wire form is a number or bytes
    if isinstance(field, fields.IPNetworkField):
        return "network"
    if isinstance(field, fields.IntegerField):
        return "integer"
    if isinstance(field, fields.FloatField):
        return "float"
    if isinstance(field, fields.BooleanField):
        return "boolean"
    if isinstance(field, fields.DateTimeField):
        return "timestamp"
    return "json"


@dataclass(frozen=True, slots=True)
class StoredField:
    """One field of a stored object and its column."""

    objname: str
    name: str
    kind: str
    column: sa.Column[Any]
    # What NULL reads as: None, or "not set" for a field that cannot be None or whose default
    # is None already (an object read back then holds the fields it was stored with).
    null_is_none: bool

    @property
    def queryable(self) -> bool:
        return self.kind != "json"

    def to_db(self, value: Any) -> Any:
        if value is None:
            return None
        kind = self.kind
        if kind == "json":
            return to_json(value)
        if kind == "integer" and not (type(value) is int and _INT64_MIN <= value <= _INT64_MAX):
            raise ObjectFieldError(
                objname=self.objname,
                field=self.name,
                expected="an integer in the signed 64-bit range (the column's)",
                value=value,
            )
        if kind == "timestamp":
            return value.astimezone(UTC)
        if kind == "address":
            return str(ipaddress.ip_address(value))
        if kind == "network":
            return str(_network(value))
        return value

    def from_db(self, value: Any) -> Any:
        if value is None:
            return None
        kind = self.kind
        if kind == "json":
            return from_json(value)
        if kind == "timestamp":
            # SQLite keeps no zone: the value was written in UTC.
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if kind == "address":
            address = ipaddress.ip_address(value)
            return int(address) if address.version == 4 else address.packed
        if kind == "network":
            net = ipaddress.ip_network(value)
            if isinstance(net, ipaddress.IPv4Network):
                return int(net.network_address) << 8 | net.prefixlen
            return net.network_address.packed + bytes((net.prefixlen,))
        if kind == "float":
            return float(value)
        if kind == "boolean":
            return bool(value)
        return value


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(value, int):
        return ipaddress.IPv4Network((value >> 8, value & 0xFF))
    return ipaddress.IPv6Network((value[:16], value[16]))


@dataclass(frozen=True, slots=True)
class StoredObject:
    """A persistent object's table, key column and fields (in declaration order)."""

    objname: str
    table: sa.Table
    key: StoredField
    fields: dict[str, StoredField]


def _object_class(registry: ObjectRegistry, objname: str) -> type[VersionedObject]:
    return registry.lookup(objname)


def stored_objects(registry: ObjectRegistry = default_registry) -> dict[str, StoredObject]:
    """Object name -> StoredObject for every table; ValueError naming what does not fit."""
    missing = missing_columns(registry)
    if missing:
        raise ValueError(f"fields without a fitting column (a migration is missing): {missing}")
    stored: dict[str, StoredObject] = {}
    for objname, table in OBJECT_TABLES.items():
        cls = _object_class(registry, objname)
        by_name = {
            name: StoredField(
                objname,
                name,
                field_kind(field),
                table.c[name],
                null_is_none=field.nullable and field.default is not None,
            )
            for name in cls.obj_fields()
            if name not in JOINED_FIELDS.get(objname, ())
            for field in (getattr(cls, name),)
        }
        assert cls.OBJ_KEY is not None
        stored[objname] = StoredObject(objname, table, by_name[cls.OBJ_KEY], by_name)
    return stored


def missing_columns(registry: ObjectRegistry = default_registry) -> list[str]:
    """Every `Object.field` with no column in its table, or a column of the wrong type."""
    missing: list[str] = []
    for objname, table in OBJECT_TABLES.items():
        cls = _object_class(registry, objname)
        for name in cls.obj_fields():
            if name in JOINED_FIELDS.get(objname, ()):
                continue
            kind = field_kind(getattr(cls, name))
            column = table.c.get(name)
            if column is None:
                missing.append(f"{objname}.{name} (no column)")
            elif not isinstance(column.type, _KIND_TYPES[kind]):
                missing.append(f"{objname}.{name} ({column.type} is no {kind} column)")
        if [column.name for column in table.primary_key.columns] != [cls.OBJ_KEY]:
            missing.append(f"{objname}.{cls.OBJ_KEY} (not the primary key)")
    return missing
