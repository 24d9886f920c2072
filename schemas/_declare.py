"""Reading a versioned object class's declaration: name, version, fields, relationships and
remotable methods, checked once when the class is created."""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING

from schemas._field import Field
from schemas.versions import Version, parse_version

if TYPE_CHECKING:
    from schemas.base import VersionedObject

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def check_name_and_version(cls: type[VersionedObject]) -> Version:
    """The parsed VERSION, after checking OBJ_NAME and VERSION are well formed."""
    if not _NAME_RE.fullmatch(cls.OBJ_NAME):
        raise TypeError(f"{cls.OBJ_NAME!r} is not a valid object name")
    try:
        return parse_version(cls.VERSION)
    except ValueError as exc:
        raise TypeError(f"{cls.__qualname__}.VERSION: {exc}") from None


def collect_fields(cls: type) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for klass in reversed(cls.__mro__):
        annotations = inspect.get_annotations(klass)
        for name, attr in klass.__dict__.items():
            if not isinstance(attr, Field):
                continue
            if name.startswith(("_", "obj_")):
                raise TypeError(f"{klass.__qualname__}.{name}: field names cannot start with _")
            if name not in annotations:
                # Type checkers only see the annotation; without it `obj.field` is untyped.
                raise TypeError(
                    f"{klass.__qualname__}.{name} needs a type annotation, "
                    f"e.g. `{name}: str = fields.String()`"
                )
            fields[name] = attr
    return fields


def check_declarations(cls: type[VersionedObject]) -> None:
    if cls.OBJ_KEY is not None and cls.OBJ_KEY not in cls._obj_fields:
        raise TypeError(f"{cls.__qualname__}.OBJ_KEY {cls.OBJ_KEY!r} is not a field")
    for name, pairs in cls.OBJ_RELATIONSHIPS.items():
        field = cls._obj_fields.get(name)
        if field is None or not field.holds_objects:
            raise TypeError(
                f"{cls.__qualname__}.OBJ_RELATIONSHIPS: {name!r} is not an object field"
            )
        parents = [parse_version(parent) for parent, child in pairs]
        children = [parse_version(child) for parent, child in pairs]
        if not pairs or parents != sorted(parents) or children != sorted(children):
            raise TypeError(
                f"{cls.__qualname__}.OBJ_RELATIONSHIPS[{name!r}] must list ascending "
                f"(parent version, child version) pairs, got {pairs!r}"
            )


def collect_remotable(cls: type) -> dict[str, str]:
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        for name, attr in klass.__dict__.items():
            func = attr.__func__ if isinstance(attr, classmethod) else attr
            kind = getattr(func, "_remotable_kind", None)
            if kind is not None:
                found[name] = kind
            else:
                found.pop(name, None)
    return found
