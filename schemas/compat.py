"""Back-levelling: an object as plain data at an older version, and back again.

`to_primitive` walks an object tree and produces `ObjectPrimitive`s: field values in their wire
form, nested objects as nested primitives, each at the version its receiver understands. The
version of each object comes from, in order: an explicit target (top object only), the peer's
manifest, the parent's relationship map (when the parent itself is back-levelled), else the
object's own version. A class's `make_compatible` then drops or converts what the older
version did not have.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schemas.errors import ObjectVersionError
from schemas.versions import Version, child_version_for, parse_version

if TYPE_CHECKING:
    from schemas.base import VersionedObject
    from schemas.registry import ObjectRegistry


@dataclass(slots=True)
class ObjectPrimitive:
    """An object as plain data: name, version, field -> wire value, and its changed fields.

    Nested objects inside `data` are ObjectPrimitives too. `schemas.encode` accepts it as is.
    """

    name: str
    version: str
    data: dict[str, Any]
    changes: list[str] = field(default_factory=list)


def to_primitive(
    obj: VersionedObject,
    target_version: str | Version | None,
    manifest: Mapping[str, str] | None,
    *,
    top: bool,
) -> ObjectPrimitive:
    cls = type(obj)
    current = cls._obj_version
    target = _target(cls, target_version, manifest, explicit_wins=top)
    relationships = cls.OBJ_RELATIONSHIPS
    data: dict[str, Any] = {}
    for name, value in obj._values.items():
        fld = cls._obj_fields[name]
        if value is None:
            data[name] = None
        elif fld.holds_objects:
            child_target: Version | None = None
            if target != current and name in relationships:
                child_target = child_version_for(relationships[name], target)
                if child_target is None:
                    continue  # the field did not exist yet at `target`
            if fld.mutable:  # a list of objects
                data[name] = [to_primitive(c, child_target, manifest, top=False) for c in value]
            else:
                data[name] = to_primitive(value, child_target, manifest, top=False)
        else:
            data[name] = fld.to_wire(value)
    if target != current:
        obj.make_compatible(data, target)
    changes = sorted(n for n in obj._obj_own_changes() if n in data)
    return ObjectPrimitive(cls.OBJ_NAME, str(target), data, changes)


def _target(
    cls: type[VersionedObject],
    explicit: str | Version | None,
    manifest: Mapping[str, str] | None,
    *,
    explicit_wins: bool,
) -> Version:
    current = cls._obj_version
    advertised = manifest.get(cls.OBJ_NAME) if manifest is not None else None
    if advertised is not None and (explicit is None or not explicit_wins):
        wanted = _parse(cls, advertised)
        if wanted.major != current.major:
            raise ObjectVersionError(
                objname=cls.OBJ_NAME,
                version=advertised,
                supported=cls.VERSION,
                reason="the peer runs a different major version",
            )
        # A newer peer reads our version as it is.
        return min(wanted, current)
    if explicit is None:
        return current
    wanted = explicit if isinstance(explicit, Version) else _parse(cls, explicit)
    if wanted.major != current.major or wanted > current:
        raise ObjectVersionError(
            objname=cls.OBJ_NAME,
            version=str(wanted),
            supported=cls.VERSION,
            reason="back-levelling reaches only older minor versions of the same major",
        )
    return wanted


def _parse(cls: type[VersionedObject], text: str) -> Version:
    try:
        return parse_version(text)
    except ValueError:
        raise ObjectVersionError(
            objname=cls.OBJ_NAME,
            version=text,
            supported=cls.VERSION,
            reason="not a 'major.minor' version",
        ) from None


def from_primitive(primitive: ObjectPrimitive, registry: ObjectRegistry) -> VersionedObject:
    """Rebuild (and validate) an object tree from primitives; see VersionedObject.from_primitive."""
    cls = registry.resolve(primitive.name, primitive.version)
    data = copy.deepcopy(primitive.data)
    for fld in cls._obj_object_fields:
        value = data.get(fld.name)
        if isinstance(value, ObjectPrimitive):
            data[fld.name] = from_primitive(value, registry)
        elif isinstance(value, list):
            data[fld.name] = [
                from_primitive(v, registry) if isinstance(v, ObjectPrimitive) else v for v in value
            ]
    return cls._obj_from_data(data, list(primitive.changes))
