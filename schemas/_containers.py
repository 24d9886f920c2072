"""Container field types: dict (string keys), list and set of one element field type."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from schemas._field import UNSET, Field
from schemas.errors import ObjectFieldError

_STR_ONLY = frozenset({str})


class _ContainerField(Field):
    """Shared element handling: element errors name the element (`metadata['k']`, `dns[2]`)."""

    __slots__ = ("_elem_check", "_elem_converts", "_elem_types", "element")
    mutable = True

    def __init__(
        self,
        element: Field,
        *,
        nullable: bool = False,
        default: Any = UNSET,
        read_only: bool = False,
    ) -> None:
        if not isinstance(element, Field):
            raise TypeError(f"a container field needs an element field, got {element!r}")
        self.element = element
        etype, echeck = element.fast_check()
        # Exact element types the decoder can accept in bulk, without a call per element.
        self._elem_types: frozenset[type] | None = None
        if etype is not None and not (echeck is not None and element.nullable):
            self._elem_types = frozenset({etype, type(None)} if element.nullable else {etype})
        self._elem_check = echeck
        self._elem_converts = element.needs_wire_conversion()
        super().__init__(nullable=nullable, default=default, read_only=read_only)

    def expected_text(self) -> str:
        text = f"{self.expected} of {self.element.expected_text()}"
        return f"{text} or None" if self.nullable else text

    def _describe_extra(self) -> str:
        return self.element.describe()

    def needs_wire_conversion(self) -> bool:
        return self.converts_on_wire or self._elem_converts

    def snapshot(self, value: Any) -> Any:
        if self.element.mutable:
            if isinstance(value, dict):
                return {k: self.element.snapshot(v) for k, v in value.items()}
            return type(value)(self.element.snapshot(v) for v in value)
        return super().snapshot(value)

    def _elements_fit(self, values: Collection[Any]) -> bool:
        """True when every element is already a valid wire value (checked in bulk, in C)."""
        types = self._elem_types
        if types is None or not types.issuperset(map(type, values)):
            return False
        check = self._elem_check
        return check is None or all(map(check, values))

    def _each(self, objname: str, key: Any, value: Any, convert: Callable[[str, Any], Any]) -> Any:
        try:
            return convert(objname, value)
        except ObjectFieldError as exc:
            raise self.element.error(objname, value, field=f"{self.name}[{key!r}]") from exc

    def _element_to_wire(self, value: Any) -> Any:
        return None if value is None else self.element.to_wire(value)


class DictField(_ContainerField):
    """A dict from strings to values of one field type."""

    __slots__ = ()
    expected = "a dict"

    def expected_text(self) -> str:
        text = f"a dict of str to {self.element.expected_text()}"
        return f"{text} or None" if self.nullable else text

    def _check_keys(self, objname: str, value: dict[Any, Any]) -> None:
        if not _STR_ONLY.issuperset(map(type, value)):
            bad = next(k for k in value if type(k) is not str)
            raise ObjectFieldError(
                objname=objname, field=f"{self.name} key", expected="a string", value=bad
            )

    def _coerce(self, objname: str, value: Any) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(type(value).__name__)
        out = {str(k) if isinstance(k, str) else k: v for k, v in value.items()}
        self._check_keys(objname, out)
        coerce = self.element.coerce
        return {k: self._each(objname, k, v, coerce) for k, v in out.items()}

    def from_wire(self, objname: str, value: Any) -> Any:
        # The common case in one call, checked in bulk in C: string keys, and elements that
        # are valid wire values as they are (_elements_fit, inlined).
        if type(value) is dict and _STR_ONLY.issuperset(map(type, value)):
            types = self._elem_types
            if types is not None and types.issuperset(map(type, value.values())):
                check = self._elem_check
                if check is None or all(map(check, value.values())):
                    return value
        return super().from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is not dict:
            raise TypeError(type(value).__name__)
        self._check_keys(objname, value)
        if self._elements_fit(value.values()):
            return value
        from_wire = self.element.from_wire
        return {k: self._each(objname, k, v, from_wire) for k, v in value.items()}

    def to_wire(self, value: Any) -> Any:
        if not self._elem_converts:
            return value
        return {k: self._element_to_wire(v) for k, v in value.items()}


class ListField(_ContainerField):
    """A list of values of one field type (a tuple is accepted and becomes a list)."""

    __slots__ = ()
    expected = "a list"

    def _coerce(self, objname: str, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise TypeError(type(value).__name__)
        coerce = self.element.coerce
        return [self._each(objname, i, v, coerce) for i, v in enumerate(value)]

    def from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is list:
            types = self._elem_types
            if types is not None and types.issuperset(map(type, value)):
                check = self._elem_check
                if check is None or all(map(check, value)):
                    return value
            try:
                from_wire = self.element.from_wire
                return [from_wire(objname, v) for v in value]
            except ObjectFieldError:
                pass  # the slow path below names the element
        return super().from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is not list:
            raise TypeError(type(value).__name__)
        from_wire = self.element.from_wire
        return [self._each(objname, i, v, from_wire) for i, v in enumerate(value)]

    def to_wire(self, value: Any) -> Any:
        if not self._elem_converts:
            return value
        if not self.element.nullable:
            return list(map(self.element.to_wire, value))
        return [self._element_to_wire(v) for v in value]


class SetField(_ContainerField):
    """A set of values of one (hashable) field type; a list on the wire."""

    __slots__ = ()
    expected = "a set"
    converts_on_wire = True

    def _coerce(self, objname: str, value: Any) -> Any:
        if not isinstance(value, set | frozenset | list | tuple):
            raise TypeError(type(value).__name__)
        coerce = self.element.coerce
        return {self._each(objname, v, v, coerce) for v in value}

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is not list:
            raise TypeError(type(value).__name__)
        if self._elements_fit(value):
            return set(value)
        from_wire = self.element.from_wire
        return {self._each(objname, v, v, from_wire) for v in value}

    def to_wire(self, value: Any) -> Any:
        if not self._elem_converts:
            return list(value)
        return [self._element_to_wire(v) for v in value]
