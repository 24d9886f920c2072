"""The object registry: finds a class by object name and checks the version a peer sent.

A registry is an instance, handed to whoever decodes: `schemas.objects` registers into
`default_registry`, and a test can build a second registry holding an older release's
classes to talk to it in the same process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from schemas.errors import (
    DecodeError,
    IncompatibleObjectVersion,
    ObjectVersionError,
    UnknownObjectError,
)
from schemas.versions import parse_version

if TYPE_CHECKING:
    from schemas._field import Field
    from schemas.base import VersionedObject, WireSpec

_T = TypeVar("_T", bound="type[VersionedObject]")


class ObjectHeader:
    """What the decoder turns an object's header extension into: the class to build and
    its wire table as this registry resolves it."""

    __slots__ = ("cls", "table")

    def __init__(self, cls: type[VersionedObject], table: dict[str, WireSpec]) -> None:
        self.cls = cls
        self.table = table

    def __repr__(self) -> str:
        return f"ObjectHeader({self.cls.OBJ_NAME})"


class ObjectRegistry:
    """Object name -> the class of the newest version this process knows."""

    def __init__(self) -> None:
        self._classes: dict[str, type[VersionedObject]] = {}
        # Header payload -> header, filled only by headers that resolved; bounded by the
        # registered names times their known minor versions.
        self._headers: dict[bytes, ObjectHeader] = {}
        # The codec's decoding callbacks and generated msgspec types bound to this registry,
        # made on first use.
        self._decode_hooks: Any = None
        self._typed: Any = None

    def register(self, cls: _T) -> _T:
        """Class decorator: make `cls` findable by `cls.OBJ_NAME`. One class per name."""
        name = cls.OBJ_NAME
        known = self._classes.get(name)
        if known is not None and known is not cls:
            raise ValueError(
                f"object name {name!r} is already registered to "
                f"{known.__module__}.{known.__qualname__}"
            )
        self._classes[name] = cls
        self._headers.clear()
        # Generated types name classes by name: a new one can complete a class left untyped.
        self._typed = None
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._classes))

    def __len__(self) -> int:
        return len(self._classes)

    def lookup(self, name: str) -> type[VersionedObject]:
        """The class registered as `name`, or UnknownObjectError."""
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownObjectError(objname=name) from None

    def manifest(self) -> dict[str, str]:
        """{object name: newest version} for every registered object."""
        return {name: self._classes[name].VERSION for name in sorted(self._classes)}

    def resolve(self, name: str, version: str) -> type[VersionedObject]:
        """The class that reads `name` at `version`.

        Raises UnknownObjectError, IncompatibleObjectVersion for a newer minor version (with
        our manifest, so the sender can back-level) or ObjectVersionError for another major.
        """
        cls = self.lookup(name)
        try:
            got = parse_version(version)
        except ValueError:
            raise ObjectVersionError(
                objname=name, version=version, supported=cls.VERSION, reason="malformed version"
            ) from None
        current = cls._obj_version
        if got.major != current.major:
            raise ObjectVersionError(
                objname=name,
                version=version,
                supported=cls.VERSION,
                reason="a different major version",
            )
        if got.minor > current.minor:
            raise IncompatibleObjectVersion(
                objname=name, objver=version, supported=cls.VERSION, manifest=self.manifest()
            )
        return cls

    def header(self, payload: bytes) -> ObjectHeader:
        """Resolve an object header extension payload (b"<name> <version>")."""
        found = self._headers.get(payload)
        if found is not None:
            return found
        name, sep, version = payload.partition(b" ")
        if not sep:
            raise DecodeError(reason=f"malformed object header {payload[:80]!r}")
        try:
            cls = self.resolve(name.decode("ascii"), version.decode("ascii"))
        except UnicodeDecodeError:
            raise DecodeError(reason=f"malformed object header {payload[:80]!r}") from None
        header = ObjectHeader(cls, self._wire_table(cls))
        self._headers[payload] = header
        return header

    def _wire_table(self, cls: type[VersionedObject]) -> dict[str, WireSpec]:
        """`cls._obj_wire_table` with its object fields bound to this registry's classes, so
        the decoder checks a nested object by its exact class instead of a call."""
        table = dict(cls._obj_wire_table)
        for field in cls._obj_object_fields:
            target = self._classes.get(getattr(field, "objname", ""))
            if target is None:
                continue  # not in this registry: the field's own check by name applies
            if field.mutable:  # a list of objects
                table[field.name] = (None, None, field.nullable, _list_of(target, field))
            else:
                table[field.name] = (target, None, field.nullable, field.from_wire)
        return table


def _list_of(target: type[VersionedObject], field: Field) -> Callable[[str, Any], Any]:
    """A from_wire for a list of `target` objects that checks their classes in bulk."""
    only = frozenset({target})
    fallback = field.from_wire

    def from_wire(objname: str, value: Any) -> Any:
        if type(value) is list and only.issuperset(map(type, value)):
            return value
        return fallback(objname, value)

    return from_wire


def obj_manifest(registry: ObjectRegistry) -> dict[str, str]:
    """{object name: newest version} of `registry`: what a peer advertises to its senders."""
    return registry.manifest()


default_registry = ObjectRegistry()
