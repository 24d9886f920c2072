"""The msgpack extension type codes of the wire format (see docs/versioned-objects.md).

An object travels as the array `[ExtType(OBJECT_EXT, b"<name> <major>.<minor>"), {field: value}]`
with an optional third element, the sorted list of the fields it changed since its last reset.
A bare UUID travels as `ExtType(UUID_EXT, <16 bytes>)`; datetimes use msgpack's Timestamp (-1).
"""

from __future__ import annotations

from typing import Final

OBJECT_EXT: Final = 1
UUID_EXT: Final = 2


def object_header(name: str, version: str) -> bytes:
    """The payload of an object's header extension."""
    return f"{name} {version}".encode("ascii")
