"""Scalar field types: strings, numbers, booleans, UUIDs, datetimes, enums, addresses."""

from __future__ import annotations

import enum
import ipaddress
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from schemas._field import UNSET, Field

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1  # msgpack carries int64 and uint64, nothing wider

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_MAC_LOOSE_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}")


class StringField(Field):
    """A text string. Accepts str (a str subclass such as a StrEnum member becomes plain str)."""

    __slots__ = ()
    expected = "a string"
    wire_type = str

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, str):
            return str(value) if type(value) is not str else value
        raise TypeError(type(value).__name__)


class IntegerField(Field):
    """A 64-bit integer. Accepts int (not bool), integral floats and decimal strings."""

    __slots__ = ()
    expected = "an integer"
    wire_type = int

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise TypeError("bool")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            value = int(value)
        elif isinstance(value, str):
            value = int(value.strip(), 10)
        elif not isinstance(value, int):
            raise TypeError(type(value).__name__)
        if not _INT_MIN <= value <= _UINT_MAX:
            raise ValueError(value)
        return int(value)


class FloatField(Field):
    """A float. Accepts float, int (not bool) and numeric strings."""

    __slots__ = ()
    expected = "a float"
    wire_type = float

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, bool):
            raise TypeError("bool")
        if isinstance(value, int | float | str):
            return float(value)
        raise TypeError(type(value).__name__)

    def _from_wire(self, objname: str, value: Any) -> Any:
        # A whole float may have been packed compactly as an int by another encoder.
        if type(value) is int:
            return float(value)
        return super()._from_wire(objname, value)


class BooleanField(Field):
    """A boolean. Accepts bool only: truthiness of arbitrary values hides mistakes."""

    __slots__ = ()
    expected = "a boolean"
    wire_type = bool

    def _coerce(self, objname: str, value: Any) -> Any:
        return self._from_wire(objname, value)


class UUIDField(Field):
    """A UUID, held as its canonical lower-case hyphenated string (as libvirt and nova do)."""

    __slots__ = ()
    expected = "a UUID"

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            return str(uuid.UUID(value))
        raise TypeError(type(value).__name__)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is str and _UUID_RE.fullmatch(value):
            return value
        raise ValueError(value)


class DateTimeField(Field):
    """A timezone-aware datetime, normalised to UTC so it survives the wire exactly.

    Accepts aware datetimes and ISO 8601 strings with an offset; a naive datetime is an
    error because its instant is unknown. On the wire it is a msgpack Timestamp.
    """

    __slots__ = ()
    expected = "a timezone-aware datetime"
    wire_type = datetime

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(type(value).__name__)
        if value.utcoffset() is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            return value
        raise TypeError(type(value).__name__)


class EnumField(Field):
    """One of a fixed set of strings, given as a StrEnum class or an iterable of strings."""

    __slots__ = ("values",)
    wire_type = str

    def __init__(
        self,
        values: type[enum.StrEnum] | Iterable[str],
        *,
        nullable: bool = False,
        default: Any = UNSET,
        read_only: bool = False,
    ) -> None:
        self.values: frozenset[str] = frozenset(str(v) for v in values)
        if not self.values:
            raise ValueError("an enum field needs at least one value")
        super().__init__(nullable=nullable, default=default, read_only=read_only)

    def expected_text(self) -> str:
        text = f"one of {sorted(self.values)}"
        return f"{text} or None" if self.nullable else text

    def _describe_extra(self) -> str:
        return f"values={sorted(self.values)}"

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, str) and value in self.values:
            return str(value) if type(value) is not str else value
        raise ValueError(value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is str and value in self.values:
            return value
        raise ValueError(value)

    def fast_check(self) -> tuple[type | None, frozenset[Any] | None]:
        return str, self.values


class IPAddressField(Field):
    """An IPv4 or IPv6 address (`ipaddress` objects); packed bytes on the wire."""

    __slots__ = ()
    expected = "an IP address"
    converts_on_wire = True

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return value
        if isinstance(value, str):
            return ipaddress.ip_address(value)
        raise TypeError(type(value).__name__)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is bytes and len(value) in (4, 16):
            return ipaddress.ip_address(value)
        raise ValueError(value)

    def to_wire(self, value: Any) -> Any:
        return value.packed


class IPNetworkField(Field):
    """An IPv4 or IPv6 network with no host bits set; packed address + prefix on the wire."""

    __slots__ = ()
    expected = "an IP network"
    converts_on_wire = True

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            return value
        if isinstance(value, str):
            return ipaddress.ip_network(value, strict=True)
        raise TypeError(type(value).__name__)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is bytes and len(value) in (5, 17):
            return ipaddress.ip_network((value[:-1], value[-1]), strict=True)
        raise ValueError(value)

    def to_wire(self, value: Any) -> Any:
        return value.network_address.packed + bytes((value.prefixlen,))


class MACAddressField(Field):
    """A MAC address, held as lower-case colon-separated text; accepts '-' and upper case."""

    __slots__ = ()
    expected = "a MAC address"

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, str) and _MAC_LOOSE_RE.fullmatch(value):
            return value.lower().replace("-", ":")
        raise ValueError(value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        if type(value) is str and _MAC_RE.fullmatch(value):
            return value
        raise ValueError(value)
