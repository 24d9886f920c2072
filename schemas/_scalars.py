"""Scalar field types: strings, numbers, booleans, UUIDs, datetimes, enums, addresses."""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from schemas._field import UNSET, Field

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1  # msgpack carries int64 and uint64, nothing wider

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_MAC_LOOSE_RE = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(?:\1[0-9a-fA-F]{2}){4}")


_V4_MAX = 2**32 - 1
_IPV4 = ipaddress.IPv4Address


# Building ipaddress objects is slow pure Python (about 0.3 us an address, 1.2 us a network)
# and a host sees the same gateways, DNS servers, subnets and fixed IPs again and again.
# The results are immutable, so memoising these pure functions is safe to share (ipaddress
# does the same for its netmasks).
@functools.lru_cache(maxsize=4096)
def _ipv4(number: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(number)


@functools.lru_cache(maxsize=1024)
def _ipv6(packed: bytes) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(packed)


@functools.lru_cache(maxsize=1024)
def _ipv4_network(number: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((number >> 8, number & 0xFF), strict=True)


@functools.lru_cache(maxsize=1024)
def _ipv6_network(packed: bytes) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network((packed[:16], packed[16]), strict=True)


# The same for a wire form msgspec already checked (schemas/_typed.py): a 32-bit int or 16
# bytes, a network's int or 17 bytes. One C-level call per value on a cache hit.
@functools.lru_cache(maxsize=4096)
def ip_from_checked_wire(value: int | bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return _ipv4(value) if type(value) is int else _ipv6(value)


@functools.lru_cache(maxsize=1024)
def network_from_checked_wire(
    value: int | bytes,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Raises ValueError for host bits set or a prefix longer than the address."""
    return _ipv4_network(value) if type(value) is int else _ipv6_network(value)


@functools.lru_cache(maxsize=1024)
def _v6_packed(number: int) -> bytes:
    return number.to_bytes(16, "big")


# Strings already seen to be canonical UUIDs. A set lookup costs 40 ns against 250 ns for the
# regex, and the same instance, volume and network ids come back in message after message.
# Membership only ever means "this string matched the regex", so sharing it is safe.
_CANONICAL_UUIDS: set[str] = set()
_CANONICAL_UUIDS_MAX = 16384


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
            if len(_CANONICAL_UUIDS) >= _CANONICAL_UUIDS_MAX:
                _CANONICAL_UUIDS.clear()
            _CANONICAL_UUIDS.add(value)
            return value
        raise ValueError(value)

    def fast_check(self) -> tuple[type | None, Callable[[Any], Any] | None]:
        return str, _CANONICAL_UUIDS.__contains__


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

    def fast_check(self) -> tuple[type | None, Callable[[Any], Any] | None]:
        return str, self.values.__contains__


class IPAddressField(Field):
    """An IPv4 or IPv6 address (`ipaddress` objects).

    On the wire an IPv4 address is its 32-bit number and an IPv6 address its 16 bytes.
    """

    __slots__ = ()
    expected = "an IP address"
    converts_on_wire = True

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return value
        if isinstance(value, str):
            return ipaddress.ip_address(value)
        raise TypeError(type(value).__name__)

    def from_wire(self, objname: str, value: Any) -> Any:
        kind = type(value)
        if kind is int and 0 <= value <= _V4_MAX:
            return _ipv4(value)
        if kind is bytes and len(value) == 16:
            return _ipv6(value)
        return super().from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        raise ValueError(value)  # neither a 32-bit number nor 16 bytes (see from_wire)

    def to_wire(self, value: Any) -> Any:
        # `_ip` is the address as an int, what int() and .packed compute from: reading it
        # directly keeps the encoder off ipaddress's Python-level properties (0.1-0.3 us each).
        if type(value) is _IPV4:
            return value._ip  # type: ignore[attr-defined]
        return _v6_packed(value._ip)


class IPNetworkField(Field):
    """An IPv4 or IPv6 network with no host bits set (`ipaddress` objects).

    On the wire an IPv4 network is `address << 8 | prefix length` and an IPv6 network the
    16 address bytes followed by the prefix length.
    """

    __slots__ = ()
    expected = "an IP network"
    converts_on_wire = True

    def _coerce(self, objname: str, value: Any) -> Any:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            return value
        if isinstance(value, str):
            return ipaddress.ip_network(value, strict=True)
        raise TypeError(type(value).__name__)

    def from_wire(self, objname: str, value: Any) -> Any:
        kind = type(value)
        try:
            if kind is int and 0 <= value <= _V4_MAX << 8 | 0xFF:
                return _ipv4_network(value)
            if kind is bytes and len(value) == 17:
                return _ipv6_network(value)
        except ValueError as exc:  # host bits set, or a prefix longer than the address
            raise self.error(objname, value) from exc
        return super().from_wire(objname, value)

    def _from_wire(self, objname: str, value: Any) -> Any:
        raise ValueError(value)  # neither form (see from_wire)

    def to_wire(self, value: Any) -> Any:
        # `_prefixlen` is what the `prefixlen` property returns (see IPAddressField.to_wire).
        if type(value) is ipaddress.IPv4Network:
            return value.network_address._ip << 8 | value._prefixlen  # type: ignore[attr-defined]
        return _v6_packed(value.network_address._ip) + bytes((value._prefixlen,))


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

    def fast_check(self) -> tuple[type | None, Callable[[Any], Any] | None]:
        return str, _MAC_RE.fullmatch
