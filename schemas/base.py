"""`VersionedObject`: declared fields, a version, change tracking and back-levelling.

A subclass lists its fields as annotated class attributes and states its version:

    @default_registry.register
    class Flavor(VersionedObject):
        # 1.0: Initial version
        # 1.1: Added description
        VERSION = "1.1"
        __slots__ = ()

        flavorid: str = fields.String()
        description: str | None = fields.String(nullable=True)

The annotation is what type checkers see; the field object is what validates at run time.
Values live in one dict per object (absent key = unset), so the decoder can hand over the
dict it validated without copying, and the encoder can pack it as it is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from msgpack import ExtType  # type: ignore[import-untyped]
from msgspec.msgpack import Ext

from schemas import compat
from schemas._declare import (
    check_declarations,
    check_name_and_version,
    collect_fields,
    collect_remotable,
)
from schemas._field import UNSET, Field
from schemas._wire import OBJECT_EXT, object_header
from schemas.errors import (
    ObjectFieldError,
    ReadOnlyFieldError,
    UnknownFieldError,
    UnsetFieldError,
)
from schemas.versions import Version

if TYPE_CHECKING:
    from schemas.compat import ObjectPrimitive
    from schemas.registry import ObjectRegistry

# {object field: [(this object's version, the child version it carries), ...]}, ascending.
Relationships = Mapping[str, Sequence[tuple[str, str]]]

WireSpec = tuple[type | None, Callable[[Any], Any] | None, bool, Callable[[str, Any], Any]]

# The storage of every object: field values, changed names, container snapshots, context,
# and the validated wire struct a decoded object's values are read from on first use.
_STORAGE_SLOTS = ("_changed", "_orig", "_values", "_wire", "obj_context")


class VersionedObject:
    """Base of every object that crosses the wire.

    Class attributes a subclass may set: `VERSION` ("major.minor"), `OBJ_NAME` (defaults to
    the class name), `OBJ_KEY` (the field that identifies a stored object) and
    `OBJ_RELATIONSHIPS` ({field: [(my version, child version), ...]} for object fields).
    Every subclass must declare `__slots__ = ()`: objects are many and small.
    """

    # A name, not a literal: mypy checks assignments against literal __slots__ and would take
    # every field (a class attribute with a plain annotation) for a missing slot.
    __slots__ = _STORAGE_SLOTS

    VERSION: ClassVar[str] = "1.0"
    OBJ_NAME: ClassVar[str] = "VersionedObject"
    OBJ_KEY: ClassVar[str | None] = None
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {}

    # Derived once per class by __init_subclass__; the hot paths read only these.
    _obj_fields: ClassVar[dict[str, Field]] = {}
    _obj_version: ClassVar[Version] = Version(1, 0)
    # field -> (exact wire type, C-level predicate or None, nullable, the field's from_wire)
    _obj_wire_table: ClassVar[dict[str, WireSpec]] = {}
    _obj_wire_header: ClassVar[ExtType] = ExtType(OBJECT_EXT, b"")
    # The same header for the msgspec encoder.
    _obj_wire_ext: ClassVar[Ext] = Ext(OBJECT_EXT, b"")
    _obj_converting: ClassVar[tuple[Field, ...]] = ()
    _obj_object_fields: ClassVar[tuple[Field, ...]] = ()
    _obj_remotable: ClassVar[dict[str, str]] = {}

    _values: dict[str, Any]
    # A decoded object starts with its values in the msgspec struct the decoder validated
    # (schemas/_typed.py) and `_values` unset; the first read of `_values` builds the dict.
    _wire: Any
    _changed: set[str] | None
    _orig: dict[str, Any] | None
    # The request context the object was loaded under; never serialised with the object.
    obj_context: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__qualname__} must declare __slots__ = ()")
        if "OBJ_NAME" not in cls.__dict__:
            cls.OBJ_NAME = cls.__name__
        cls._obj_version = check_name_and_version(cls)
        cls._obj_fields = collect_fields(cls)
        check_declarations(cls)
        cls._obj_wire_table = {
            name: (*field.fast_check(), field.nullable, field.from_wire)
            for name, field in cls._obj_fields.items()
        }
        cls._obj_converting = tuple(
            f for f in cls._obj_fields.values() if f.needs_wire_conversion()
        )
        cls._obj_object_fields = tuple(f for f in cls._obj_fields.values() if f.holds_objects)
        cls._obj_wire_header = ExtType(OBJECT_EXT, object_header(cls.OBJ_NAME, cls.VERSION))
        cls._obj_wire_ext = Ext(OBJECT_EXT, cls._obj_wire_header.data)
        cls._obj_remotable = collect_remotable(cls)

    def __init__(self, **values: Any) -> None:
        self._values = {}
        self._changed = None
        self._orig = None
        self.obj_context = None
        fields = self._obj_fields
        for name, value in values.items():
            field = fields.get(name)
            if field is None:
                raise UnknownFieldError(objname=self.OBJ_NAME, field=name)
            field.__set__(self, value)

    if not TYPE_CHECKING:  # for type checkers, a misspelt attribute stays an error

        def __getattr__(self, name: str) -> Any:
            # Only reached when normal lookup fails: for `_values`, when a decoded object's
            # values are still in its wire struct.
            if name == "_values":
                try:
                    wire = object.__getattribute__(self, "_wire")
                except AttributeError:
                    wire = None
                if wire is not None:
                    values = wire._obj_values()
                    try:  # another thread may have built them meanwhile: keep one dict
                        values = object.__getattribute__(self, "_values")
                    except AttributeError:
                        self._values = values
                        self._wire = None
                    return values
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute '_values'",
                    name=name,
                    obj=self,
                )
            # Python calls this after any AttributeError, UnsetFieldError from a field
            # included: look again so that the original error is the one raised.
            return object.__getattribute__(self, name)

    # -- identity --------------------------------------------------------------------------

    @classmethod
    def obj_name(cls) -> str:
        """The object's name on the wire and in the registry."""
        return cls.OBJ_NAME

    @classmethod
    def obj_fields(cls) -> tuple[str, ...]:
        """The names of the declared fields, in declaration order."""
        return tuple(cls._obj_fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, VersionedObject)
        return self._values == other._values

    __hash__: ClassVar[None]  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"{self.OBJ_NAME}({shown})"

    # -- field access (called by the field descriptors) ------------------------------------

    def _obj_assign(self, field: Field, value: Any) -> None:
        name = field.name
        if field.read_only and name in self._values:
            raise ReadOnlyFieldError(objname=self.OBJ_NAME, field=name, current=self._values[name])
        self._values[name] = value
        if self._changed is None:
            self._changed = {name}
        else:
            self._changed.add(name)

    def _obj_read_unset(self, field: Field) -> Any:
        # A default is stored on first read (set, not changed) so a container default that
        # the caller then fills in place is the one the object keeps and reports as changed.
        if field.default is UNSET:
            raise UnsetFieldError(objname=self.OBJ_NAME, field=field.name)
        value = field.snapshot(field.default) if field.mutable else field.default
        self._values[field.name] = value
        if field.mutable:
            self._obj_snapshot(field, value)
        return value

    def _obj_unset(self, field: Field) -> None:
        self._values.pop(field.name, None)
        if self._changed:
            self._changed.discard(field.name)
        if self._orig:
            self._orig.pop(field.name, None)

    def _obj_snapshot(self, field: Field, value: Any) -> None:
        """Remember a container's content when it is handed out, to see in-place changes."""
        name = field.name
        if self._changed is not None and name in self._changed:
            return
        if self._orig is None:
            self._orig = {name: field.snapshot(value)}
        elif name not in self._orig:
            self._orig[name] = field.snapshot(value)

    # -- set / unset -----------------------------------------------------------------------

    def obj_attr_is_set(self, name: str) -> bool:
        """Whether the field holds a value (None counts as a value); unset is not None."""
        if name not in self._obj_fields:
            raise UnknownFieldError(objname=self.OBJ_NAME, field=name)
        return name in self._values

    def obj_set_defaults(self, *names: str) -> None:
        """Set the named (default: all) unset fields that have a default; marks them changed."""
        for name in names or tuple(self._obj_fields):
            field = self._obj_fields.get(name)
            if field is None:
                raise UnknownFieldError(objname=self.OBJ_NAME, field=name)
            if name not in self._values and field.default is not UNSET:
                default = field.default
                field.__set__(self, field.snapshot(default) if field.mutable else default)

    # -- change tracking -------------------------------------------------------------------

    def _obj_own_changes(self) -> set[str]:
        """Fields assigned or changed in place since the last reset (nested objects aside)."""
        changed = set(self._changed) if self._changed else set()
        if self._orig:
            fields, values = self._obj_fields, self._values
            for name, snap in self._orig.items():
                if name not in changed and _differs(fields[name], values.get(name, UNSET), snap):
                    changed.add(name)
        return changed

    def obj_what_changed(self) -> set[str]:
        """Fields changed since the last reset, including those whose nested objects changed."""
        changed = self._obj_own_changes()
        values = self._values
        for field in self._obj_object_fields:
            name = field.name
            value = values.get(name)
            if name in changed or value is None:
                continue
            # An object field that is `mutable` holds a list of objects.
            children = value if field.mutable else (value,)
            if any(child.obj_what_changed() for child in children):
                changed.add(name)
        return changed

    def obj_get_changes(self) -> dict[str, Any]:
        """{field: current value} for every changed field that is set."""
        values = self._values
        return {name: values[name] for name in self.obj_what_changed() if name in values}

    def obj_reset_changes(
        self, fields: Iterable[str] | None = None, *, recursive: bool = False
    ) -> None:
        """Forget the changes to `fields` (default: all); `recursive` also resets nested objects."""
        names: set[str] | None = None
        if fields is None:
            self._changed = None
        else:
            names = set(fields)
            unknown = names - self._obj_fields.keys()
            if unknown:
                raise UnknownFieldError(objname=self.OBJ_NAME, field=sorted(unknown)[0])
            if self._changed:
                self._changed -= names
        if self._orig:
            for name in list(self._orig):
                if names is None or name in names:
                    value = self._values.get(name, UNSET)
                    if value is UNSET:
                        del self._orig[name]
                    else:
                        # Callers may still hold the container: keep watching it.
                        self._orig[name] = self._obj_fields[name].snapshot(value)
        if recursive:
            for field in self._obj_object_fields:
                value = self._values.get(field.name)
                if value is None or (names is not None and field.name not in names):
                    continue
                for child in value if field.mutable else (value,):
                    child.obj_reset_changes(recursive=True)

    def obj_clone(self) -> Self:
        """A deep copy with the same changes, sharing only `obj_context`."""
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone._values = copy.deepcopy(self._values, memo)
        clone._changed = set(self._changed) if self._changed else None
        clone._orig = copy.deepcopy(self._orig, memo)
        # The context is who asked, not part of the object: copies share it.
        clone.obj_context = self.obj_context
        return clone

    def __copy__(self) -> Self:
        """A shallow copy: its own field dict, the same field values."""
        clone = type(self).__new__(type(self))
        clone._values = dict(self._values)
        clone._changed = set(self._changed) if self._changed else None
        clone._orig = dict(self._orig) if self._orig else None
        clone.obj_context = self.obj_context
        return clone

    def obj_changes_only(self) -> Self:
        """A copy with only `OBJ_KEY` and the changed fields, marked changed: what save sends."""
        key = self.OBJ_KEY
        names = self.obj_what_changed()
        clone = type(self).__new__(type(self))
        clone._values = {n: v for n, v in self._values.items() if n in names or n == key}
        clone._changed = names & clone._values.keys() or None
        clone._orig = None
        clone.obj_context = self.obj_context
        return clone

    def _obj_apply_updates(self, updates: Mapping[str, Any]) -> None:
        """Take the field values a remote call returned (the remote side is authoritative,
        read-only or not) and reset all changes: the object now matches the remote copy."""
        fields = self._obj_fields
        for name, value in updates.items():
            field = fields.get(name)
            if field is None:
                raise UnknownFieldError(objname=self.OBJ_NAME, field=name)
            self._values[name] = field.coerce(self.OBJ_NAME, value)
        self.obj_reset_changes(recursive=True)

    # -- back-levelling --------------------------------------------------------------------

    def to_primitive(
        self, target_version: str | None = None, manifest: Mapping[str, str] | None = None
    ) -> ObjectPrimitive:
        """This object as plain data at `target_version`, or at the manifest's versions.

        Nested objects follow the manifest when it names them, else `OBJ_RELATIONSHIPS`.
        Raises ObjectVersionError for a target of another major version or newer than ours.
        """
        return compat.to_primitive(self, target_version, manifest, top=True)

    @classmethod
    def from_primitive(
        cls, primitive: ObjectPrimitive, registry: ObjectRegistry | None = None
    ) -> Self:
        """Rebuild an object from `to_primitive` output, validating every field.

        Raises UnknownObjectError, IncompatibleObjectVersion (newer minor: the error carries
        our manifest), ObjectVersionError (other major) or ObjectFieldError.
        """
        if registry is None:
            from schemas.registry import default_registry

            registry = default_registry
        obj = compat.from_primitive(primitive, registry)
        if not isinstance(obj, cls):
            raise ObjectFieldError(
                objname=primitive.name, field="<object>", expected=cls.OBJ_NAME, value=obj
            )
        return obj

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        """Edit `primitive` (field -> wire value) in place to read as `target_version`.

        Override to drop fields added after `target_version` or convert changed ones; nested
        objects are already back-levelled. Only called when the target is older than us.
        """

    # -- wire ------------------------------------------------------------------------------

    @classmethod
    def _obj_from_data(cls, data: dict[str, Any], changes: Any) -> Self:
        """Validate field data of any origin (every value through `from_wire`) and adopt it."""
        fields = cls._obj_fields
        objname = cls.OBJ_NAME
        for name, value in data.items():
            field = fields.get(name)
            if field is None:
                raise UnknownFieldError(objname=objname, field=name)
            data[name] = field.from_wire(objname, value)
        return cls._obj_adopt(data, changes)

    @classmethod
    def _obj_adopt(cls, data: dict[str, Any], changes: Any) -> Self:
        """A new object owning `data` (already validated) and marked with `changes`."""
        obj = cls.__new__(cls)
        obj._values = data
        obj._changed = wire_changes(cls, changes) if changes else None
        obj._orig = None
        obj.obj_context = None
        return obj


def _differs(field: Field, value: Any, snap: Any) -> bool:
    if value is UNSET:
        return True
    if field.holds_objects and value is not None and snap is not None:
        # Lists of objects: membership by identity; the objects track their own changes.
        return len(value) != len(snap) or any(a is not b for a, b in zip(value, snap, strict=True))
    return bool(value != snap)


def wire_changes(cls: type[VersionedObject], changes: Any) -> set[str]:
    if type(changes) is not list or not set(map(type, changes)) <= {str}:
        raise ObjectFieldError(
            objname=cls.OBJ_NAME, field="<changes>", expected="a list of field names", value=changes
        )
    names = set(changes)
    unknown = names - cls._obj_fields.keys()
    if unknown:
        raise UnknownFieldError(objname=cls.OBJ_NAME, field=sorted(unknown)[0])
    return names
