"""Validated msgpack in C: msgspec types generated from the objects' field tables.

For each class a registry resolves, `TypedObjects` makes two `msgspec.Struct`s:

- `<Name>Fields`: one optional field (default UNSET) per declared field, typed with the
  field's exact wire type — str, int, float, bool, a Literal of the enum values, lists and
  dicts of those, int-or-bytes of the right sizes for IP forms, the nested object's wire
  struct — refusing unknown names;
- `<Name>Wire`: the object's array, `[header Ext, <Name>Fields, changes]`, the changes a
  list of Literal field names.

msgspec checks all of that in C while it parses. What a msgspec type cannot say is checked by
one generated function per class, which also turns the structs into objects: the header names
this class at a version we read, UUIDs and MACs are canonical, IP forms become address objects,
set fields sets, and datetimes are Timestamps (msgspec would also take RFC 3339 text). Those
checks are the field table's own (`_obj_wire_table`: exact type, C-level predicate, nullable,
`from_wire`), so they accept exactly what the reference decoder accepts.

Anything either step refuses raises `Fallback`: the codec then runs the reference decoder,
which raises the precise error. Never the other way round: what this accepts, it accepts with
the value the reference decoder would build.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgpack  # type: ignore[import-untyped]
import msgspec

from schemas._containers import DictField, ListField, SetField
from schemas._field import Field
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
    ip_from_checked_wire,
    network_from_checked_wire,
)
from schemas._wire import OBJECT_EXT, object_header

if TYPE_CHECKING:
    from schemas.base import VersionedObject
    from schemas.registry import ObjectRegistry

_V4_MAX = 2**32 - 1
_IP_WIRE = (
    Annotated[int, msgspec.Meta(ge=0, le=_V4_MAX)]
    | Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
)
_NET_WIRE = (
    Annotated[int, msgspec.Meta(ge=0, le=_V4_MAX << 8 | 0xFF)]
    | Annotated[bytes, msgspec.Meta(min_length=17, max_length=17)]
)
_NO_CHANGES = Annotated[list[str], msgspec.Meta(max_length=0)]


class Fallback(Exception):
    """The typed path does not vouch for this input: decode it with the reference decoder.

    A signal, not an error: the caller decodes again."""


class _NotTyped(Exception):
    """A class whose fields have no generated msgspec form (a field type this module does not
    know, an object field naming a class the registry lacks, or a class that contains itself)."""


# Timestamps by their extension payload. The same few instants (created, updated, launched)
# come back in message after message; the conversion is pure, so sharing it is safe.
_TIMESTAMPS: dict[bytes, datetime] = {}
_TIMESTAMPS_MAX = 4096


def timestamp(ext: msgspec.msgpack.Ext) -> datetime:
    """The datetime of a Timestamp extension, exactly as msgpack's reference decoder reads it
    (nanoseconds truncated to microseconds); Fallback for any other extension."""
    if ext.code != -1:
        raise Fallback
    data = bytes(ext.data)  # the same object: a decoded extension holds bytes
    found = _TIMESTAMPS.get(data)
    if found is None:
        # ValueError (a malformed payload) or OverflowError (out of range) means Fallback too.
        found = msgpack.Timestamp.from_bytes(data).to_datetime()
        if len(_TIMESTAMPS) >= _TIMESTAMPS_MAX:
            _TIMESTAMPS.clear()
        _TIMESTAMPS[data] = found
    return found


def _refuse_ext(code: int, data: memoryview) -> Any:
    # No field type decodes as Any: an extension reaching this hook is out of place.
    raise Fallback


class TypedObjects:
    """The generated types and builders for one registry's classes, made on first use."""

    def __init__(self, registry: ObjectRegistry) -> None:
        self.registry = registry
        # name -> (decoder of its wire array, its builder) or None when it cannot be typed.
        self._decoders: dict[str, tuple[Any, Callable[[Any], Any]] | None] = {}
        self.by_header: dict[bytes, tuple[Any, Callable[[Any], Any]]] = {}
        self._wire: dict[str, Any] = {}
        self._building: set[str] = set()
        self._namespace: dict[str, Any] = {
            "UNSET": msgspec.UNSET,
            "Fallback": Fallback,
            "new": object.__new__,
            "timestamp": timestamp,
            "ip_from_checked_wire": ip_from_checked_wire,
            "network_from_checked_wire": network_from_checked_wire,
        }

    def object_decoder(self, payload: bytes) -> tuple[Any, Callable[[Any], Any]]:
        """`decoder` of the class an object header names, remembered under the header (only
        headers that resolve are, so the table is bounded by the classes and their versions).
        Raises what `ObjectRegistry.header` raises, or Fallback."""
        found = self.decoder(self.registry.header(payload).cls)
        self.by_header[payload] = found
        return found

    def decoder(self, cls: type[VersionedObject]) -> tuple[Any, Callable[[Any], Any]]:
        """(msgspec decoder of `cls`'s wire array, builder of the object); Fallback if none."""
        name = cls.OBJ_NAME
        try:
            found = self._decoders[name]
        except KeyError:
            found = None
            if self.registry._classes.get(name) is cls:
                try:
                    wire = self._wire_struct(name)
                except _NotTyped:
                    pass
                else:
                    decoder = msgspec.msgpack.Decoder(wire, ext_hook=_refuse_ext)
                    found = (decoder, self._namespace[_builder_name(name)])
            self._decoders[name] = found
        if found is None:
            raise Fallback
        return found

    # -- generation ----------------------------------------------------------------------

    def _wire_struct(self, name: str) -> Any:
        made = self._wire.get(name)
        if made is not None:
            return made
        if name in self._building:
            raise _NotTyped(name)  # a class that contains itself: left to the reference path
        cls = self.registry._classes.get(name)
        if cls is None:
            raise _NotTyped(name)
        self._building.add(name)
        try:
            specs = []
            for fname, field in cls._obj_fields.items():
                kind, _ = self._wire_type(field)
                specs.append((fname, kind | msgspec.UnsetType, msgspec.UNSET))
            # Kept by the decoded object until its values are first read, so tracked by the
            # garbage collector like any object that may end up in a cycle.
            data = msgspec.defstruct(
                f"{name}Fields",
                specs,
                forbid_unknown_fields=True,
                namespace={"_obj_values": self._define_values(cls)},
            )
            names = tuple(cls._obj_fields)
            changes: Any = list[Literal[names]] if names else _NO_CHANGES  # type: ignore[valid-type]
            wire = msgspec.defstruct(
                f"{name}Wire",
                [
                    ("header", msgspec.msgpack.Ext),
                    ("data", data),
                    ("changes", changes | msgspec.UnsetType, msgspec.UNSET),
                ],
                array_like=True,
                forbid_unknown_fields=True,
                gc=False,
            )
            self._define_builder(cls)
        finally:
            self._building.discard(name)
        self._wire[name] = wire
        return wire

    def _wire_type(self, field: Field) -> tuple[Any, bool]:
        """(msgspec type of the field's wire value, whether the field table checks it after)."""
        kind: Any
        post = True
        if isinstance(field, ObjectField):
            kind = self._wire_struct(field.objname)
        elif isinstance(field, ListOfObjectsField):
            kind = list[self._wire_struct(field.objname)]  # type: ignore[misc]
        elif isinstance(field, DictField | ListField | SetField):
            element, post = self._wire_type(field.element)
            kind = dict[str, element] if isinstance(field, DictField) else list[element]  # type: ignore[valid-type]
            post = post or isinstance(field, SetField)
        elif isinstance(field, EnumField):
            kind, post = Literal[tuple(sorted(field.values))], False
        elif type(field) in _EXACT:
            kind, post = _EXACT[type(field)], False
        elif isinstance(field, UUIDField | MACAddressField):
            kind = str
        elif isinstance(field, IPAddressField):
            kind = _IP_WIRE
        elif isinstance(field, IPNetworkField):
            kind = _NET_WIRE
        elif isinstance(field, DateTimeField):
            # The Timestamp extension itself: msgspec's datetime would also accept RFC 3339
            # text, and rounds nanoseconds where msgpack truncates them.
            kind = msgspec.msgpack.Ext
        else:
            raise _NotTyped(type(field).__name__)
        if field.nullable:
            kind = kind | None
        return kind, post

    def _compile(self, name: str, lines: list[str]) -> None:
        exec(compile("\n".join(lines), f"<schemas typed {name}>", "exec"), self._namespace)

    def _define_values(self, cls: type[VersionedObject]) -> Callable[[Any], dict[str, Any]]:
        """`values_<Name>(fields struct) -> {field: value}` of the fields that are set."""
        name = cls.OBJ_NAME
        lines = [f"def values_{name}(s, UNSET=UNSET):", "    d = {}"]
        for fname, field in cls._obj_fields.items():
            lines += [f"    v = s.{fname}", "    if v is not UNSET:"]
            if isinstance(field, ObjectField | ListOfObjectsField):
                # Nested objects were checked with their parent; they become objects now.
                wrap = f"wrap_{field.objname}"
                made = f"[{wrap}(x) for x in v]" if field.mutable else f"{wrap}(v)"
                lines.append(f"        d[{fname!r}] = None if v is None else {made}")
            else:
                lines.append(f"        d[{fname!r}] = v")
        lines.append("    return d")
        self._compile(name, lines)
        values: Callable[[Any], dict[str, Any]] = self._namespace[f"values_{name}"]
        return values

    def _define_builder(self, cls: type[VersionedObject]) -> None:
        """Compile into the namespace, for `cls`: `check_<Name>(wire)`, the checks msgspec
        cannot make and the conversions, written back into the fields struct, nested objects
        included; `wrap_<Name>(wire)`, the object that keeps that struct as its values until
        they are first read (its nested objects are wrapped then); `build_<Name>`, both."""
        name = cls.OBJ_NAME
        ns = self._namespace
        ns[f"CLS_{name}"] = cls
        ns[f"HEADERS_{name}"] = frozenset(
            object_header(name, f"{cls._obj_version.major}.{minor}")
            for minor in range(cls._obj_version.minor + 1)
        )
        ns[f"NAME_{name}"] = name
        lines = [
            f"def check_{name}(w, UNSET=UNSET):",
            "    h = w.header",
            f"    if h.code != {OBJECT_EXT} or h.data not in HEADERS_{name}:",
            "        raise Fallback",
            "    s = w.data",
        ]
        for index, (fname, field) in enumerate(cls._obj_fields.items()):
            if isinstance(field, ObjectField | ListOfObjectsField):
                checker = f"check_{field.objname}"
                lines += [
                    f"    v = s.{fname}",
                    "    if v is not UNSET and v is not None:",
                    f"        for x in v:\n            {checker}(x)"
                    if field.mutable
                    else f"        {checker}(v)",
                ]
            elif isinstance(field, DateTimeField):
                lines += [
                    f"    v = s.{fname}",
                    "    if v is not UNSET and v is not None:",
                    f"        s.{fname} = timestamp(v)",
                ]
            elif (convert := _checked_conversion(field)) is not None:
                lines += [
                    f"    v = s.{fname}",
                    "    if v is not UNSET and v is not None:",
                    f"        s.{fname} = {convert}",
                ]
            elif self._wire_type(field)[1]:
                wire_type, check, nullable, from_wire = cls._obj_wire_table[fname]
                ns[f"T_{name}_{index}"] = wire_type
                ns[f"C_{name}_{index}"] = check
                ns[f"F_{name}_{index}"] = from_wire
                ok = f"v.__class__ is T_{name}_{index}"
                if check is not None:
                    ok += f" and C_{name}_{index}(v)"
                if wire_type is None:
                    ok = "False"
                if nullable:
                    ok = f"v is None or ({ok})"
                lines += [
                    f"    v = s.{fname}",
                    f"    if v is not UNSET and not ({ok}):",
                    f"        s.{fname} = F_{name}_{index}(NAME_{name}, v)",
                ]
        lines += [
            f"def wrap_{name}(w):",
            f"    o = new(CLS_{name})",
            "    o._wire = w.data",
            "    c = w.changes",
            "    o._changed = set(c) if c else None",
            "    o._orig = None",
            "    o.obj_context = None",
            "    return o",
            f"def {_builder_name(name)}(w):",
            f"    check_{name}(w)",
            f"    return wrap_{name}(w)",
        ]
        self._compile(name, lines)


_EXACT: dict[type[Field], Any] = {
    StringField: str,
    IntegerField: int,
    # msgspec reads an int into a float field as float(int), as FloatField.from_wire does.
    FloatField: float,
    BooleanField: bool,
}


def _checked_conversion(field: Field) -> str | None:
    """The builder's expression for an IP field (or a list of them) whose wire form msgspec
    checked already, or None when the field table's own check applies."""
    if isinstance(field, IPAddressField):
        return "ip_from_checked_wire(v)"
    if isinstance(field, IPNetworkField):
        return "network_from_checked_wire(v)"
    if isinstance(field, ListField) and not field.element.nullable:
        element = _checked_conversion(field.element)
        if element is not None:
            return f"list(map({element.partition('(')[0]}, v))"
    return None


def _builder_name(objname: str) -> str:
    return f"build_{objname}"
