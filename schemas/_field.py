"""The field base: a descriptor that coerces on assignment and checks strictly on the wire.

A field has two ways in. `coerce` is for Python callers (`inst.memory_mb = "512"`): it accepts
the obvious spellings and normalises them. `from_wire` is for the decoder: it accepts only the
exact wire form the encoder produces, so a peer cannot smuggle a lenient spelling through.
Both raise `ObjectFieldError` naming `Object.field`, the expected type and the bad value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final

from schemas.errors import ObjectFieldError

if TYPE_CHECKING:
    from schemas.base import VersionedObject


class _Unset:
    """The marker for "no value": distinct from None, which is a value of a nullable field."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class Field:
    """One declared field of a versioned object.

    Subclasses set `expected` (the human name of the type, used in errors), `wire_type` (a
    wire value of exactly this Python type is valid as it is; None means always check) and
    override `_coerce`/`_from_wire`/`to_wire` where the Python and wire forms differ. They
    raise ValueError or TypeError for a bad value; the base turns that into ObjectFieldError.
    """

    __slots__ = ("default", "name", "nullable", "read_only")

    expected: ClassVar[str] = "a value"
    wire_type: ClassVar[type | None] = None
    # The value's wire form differs from its Python form (e.g. IP addresses travel packed).
    converts_on_wire: ClassVar[bool] = False
    # Values are objects (or lists of them): change tracking and back-levelling descend.
    holds_objects: ClassVar[bool] = False
    # Values are containers callers may change in place: reads take a snapshot to compare.
    mutable: ClassVar[bool] = False

    def __init__(
        self, *, nullable: bool = False, default: Any = UNSET, read_only: bool = False
    ) -> None:
        self.name = ""
        self.nullable = nullable
        self.default = default
        self.read_only = read_only

    # -- declaration ---------------------------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        if self.default is not UNSET:
            self.default = self.coerce(owner.__name__, self.default)

    def describe(self) -> str:
        """A stable text of everything that shapes the wire form, for version fingerprints."""
        extra = self._describe_extra()
        parts = [extra] if extra else []
        parts.append(f"nullable={self.nullable}")
        if self.default is not UNSET:
            parts.append(f"default={self.default!r}")
        if self.read_only:
            parts.append("read_only=True")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _describe_extra(self) -> str:
        return ""

    def expected_text(self) -> str:
        return f"{self.expected} or None" if self.nullable else self.expected

    # -- descriptor ----------------------------------------------------------------------

    def __get__(self, obj: VersionedObject | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            value = obj._values[self.name]
        except KeyError:
            return obj._obj_read_unset(self)
        if self.mutable:
            obj._obj_snapshot(self, value)
        return value

    def __set__(self, obj: VersionedObject, value: Any) -> None:
        obj._obj_assign(self, self.coerce(obj.OBJ_NAME, value))

    def __delete__(self, obj: VersionedObject) -> None:
        obj._obj_unset(self)

    # -- values --------------------------------------------------------------------------

    def coerce(self, objname: str, value: Any) -> Any:
        """The canonical Python value for `value`, or ObjectFieldError."""
        if value is None:
            if self.nullable:
                return None
            raise self.error(objname, value)
        try:
            return self._coerce(objname, value)
        except ObjectFieldError:
            raise
        except (ValueError, TypeError) as exc:
            raise self.error(objname, value) from exc

    def from_wire(self, objname: str, value: Any) -> Any:
        """The Python value for a decoded wire value, accepting only the exact wire form."""
        if value is None:
            if self.nullable:
                return None
            raise self.error(objname, value)
        try:
            return self._from_wire(objname, value)
        except ObjectFieldError:
            raise
        except (ValueError, TypeError) as exc:
            raise self.error(objname, value) from exc

    def to_wire(self, value: Any) -> Any:
        """The wire form of a (non-None) Python value; identity unless `needs_wire_conversion`."""
        return value

    def needs_wire_conversion(self) -> bool:
        """Whether `to_wire` is more than the identity (the encoder skips it otherwise)."""
        return self.converts_on_wire

    def snapshot(self, value: Any) -> Any:
        """A copy to compare against later, for fields changed in place (`mutable`)."""
        return copy.copy(value)

    def error(self, objname: str, value: Any, *, field: str | None = None) -> ObjectFieldError:
        return ObjectFieldError(
            objname=objname,
            field=field if field is not None else self.name,
            expected=self.expected_text(),
            value=value,
        )

    def _coerce(self, objname: str, value: Any) -> Any:
        return self._from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is self.wire_type:
            return value
        raise TypeError(type(value).__name__)

    def fast_check(self) -> tuple[type | None, Callable[[Any], Any] | None]:
        """(exact type, C-level predicate or None) the decoder tests inline before calling.

        A wire value of exactly that type for which the predicate is true is valid as it is;
        anything else goes through `from_wire`. The predicate must be a builtin (a bound
        `frozenset.__contains__`, a compiled regex's `fullmatch`): it runs once per field.
        """
        return self.wire_type, None
