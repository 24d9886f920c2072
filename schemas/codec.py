"""The msgpack codec: `encode(value) -> bytes` and a strict, bounded `decode(bytes) -> value`.

Values are msgpack data (None, bool, int, float, str, bytes, lists, dicts with str keys),
tz-aware datetimes (msgpack Timestamp; they decode in UTC), UUIDs and versioned objects,
nested in any way. Tuples decode as lists.

Two implementations of one wire format. The fast one runs in msgspec's C code: the encoder's
`enc_hook` turns an object into `[header, field dict]` and msgspec packs the rest; the decoder
reads each object straight into msgspec types generated from its class's field table
(`schemas/_typed.py`), which check every field in C, and a generated function per class turns
them into the object. The reference one is msgpack's, with the hooks this codec started with.
The fast path takes only what it can vouch for — values of the plain wire types, messages
whose size alone keeps them inside the limits — and hands anything else, including every
input it refuses, to the reference path, which encodes it or raises the exact error. Both
produce the same bytes (tests/schemas/test_wire_bytes.py holds them to recorded ones).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgpack  # type: ignore[import-untyped]
import msgspec

from schemas._typed import Fallback, TypedObjects
from schemas._wire import OBJECT_EXT, UUID_EXT, object_header
from schemas.base import VersionedObject, wire_changes
from schemas.compat import ObjectPrimitive
from schemas.errors import (
    DecodeError,
    EncodeError,
    IncompatibleObjectVersion,
    SchemaError,
    UnknownFieldError,
)
from schemas.registry import ObjectHeader, ObjectRegistry, default_registry
from schemas.versions import parse_version


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds on what `decode` accepts; anything over them is a DecodeError before allocation.

    `max_depth` bounds the nesting of lists and dicts around objects; inside an object the
    declared field types bound it (and msgpack's parser stops at 1024 levels regardless).
    """

    max_size: int = 4 * 1024 * 1024
    max_depth: int = 32
    max_str_len: int = 1024 * 1024
    max_bin_len: int = 1024 * 1024
    max_array_len: int = 100_000
    max_map_len: int = 100_000
    # Object headers, UUIDs and timestamps are all short.
    max_ext_len: int = 256


DEFAULT_LIMITS = DecodeLimits()

_new_object = object.__new__


def encode(value: Any, manifest: Mapping[str, str] | None = None) -> bytes:
    """Pack `value`; with a peer's `manifest`, every object in it is back-levelled to it.

    Raises EncodeError for a value the wire cannot carry (a naive datetime, a set, an int
    beyond 64 bits, ...) and ObjectVersionError when an object cannot be back-levelled.
    """
    if _wire_ready(value):
        try:
            if manifest is None:
                return _ENCODER.encode(value)
            return msgspec.msgpack.encode(value, enc_hook=_BackLevel(manifest).enc_hook)
        except Exception:
            pass  # the reference path encodes it or raises the exact error
    return _encode_reference(value, manifest)


def _encode_reference(value: Any, manifest: Mapping[str, str] | None) -> bytes:
    hook = _default if manifest is None else _BackLevel(manifest).default
    try:
        return msgpack.packb(value, default=hook, use_bin_type=True, datetime=True)
    except SchemaError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(reason=str(exc)) from exc


# Values msgspec packs exactly as msgpack does. Other types it packs too, differently (a UUID
# as text, a set as an array, a naive datetime as text, a dataclass as a map): those values
# take the reference path.
_LEAF_TYPES = frozenset({str, int, float, bool, type(None), bytes})
_STR_ONLY = frozenset({str})


def _wire_ready(value: Any) -> bool:
    """Whether the containers around the objects in `value` hold only plain wire values.

    Inside an object the field types already guarantee it."""
    kind = type(value)
    if kind in _LEAF_TYPES or isinstance(value, VersionedObject):
        return True
    if kind is list or kind is tuple:
        return _LEAF_TYPES.issuperset(map(type, value)) or all(map(_wire_ready, value))
    if kind is dict:
        if not _STR_ONLY.issuperset(map(type, value)):
            return False
        values = value.values()
        return _LEAF_TYPES.issuperset(map(type, values)) or all(map(_wire_ready, values))
    if kind is datetime:
        return value.utcoffset() is not None
    return False


def _enc_hook(value: Any) -> Any:
    # `_object_wire` inlined: this runs for every object encoded.
    if not isinstance(value, VersionedObject):
        raise TypeError(type(value).__name__)  # the reference path reports it
    cls = type(value)
    data = value._values
    if cls._obj_converting:
        data = _converted(cls, data)
    changes = value._changed if value._orig is None else value._obj_own_changes()
    if changes:
        return [cls._obj_wire_ext, data, sorted(changes)]
    return [cls._obj_wire_ext, data]


def _converted(cls: type[VersionedObject], values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the fields that need it in their wire form (a copy if any is set)."""
    data = values
    for field in cls._obj_converting:
        item = values.get(field.name)
        if item is not None:
            if data is values:
                data = dict(values)
            data[field.name] = field.to_wire(item)
    return data


def _object_wire(value: VersionedObject) -> list[Any]:
    # Runs for every object encoded: the value dict goes out as it is unless a field needs
    # its wire form (IP addresses, sets).
    cls = type(value)
    data = _converted(cls, value._values) if cls._obj_converting else value._values
    changes = value._changed if value._orig is None else value._obj_own_changes()
    if changes:
        return [cls._obj_wire_ext, data, sorted(changes)]
    return [cls._obj_wire_ext, data]


_ENCODER = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


def decode(
    data: bytes,
    *,
    registry: ObjectRegistry = default_registry,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> Any:
    """Unpack and validate `data` completely.

    Raises IncompatibleObjectVersion when an object is of a newer minor version than
    `registry` knows (it carries our manifest, so the sender can back-level and retry), and
    DecodeError for everything else: garbage, limits, unknown objects or fields, bad values.
    """
    if type(data) is not bytes and not isinstance(data, bytearray | memoryview):
        raise DecodeError(reason=f"expected bytes, got {type(data).__name__}")
    size = len(data)
    if size > limits.max_size:
        raise DecodeError(reason=f"message of {size} bytes is over the limit of {limits.max_size}")
    if size <= (_DEFAULT_FAST_MAX if limits is DEFAULT_LIMITS else _fast_max(limits)):
        typed = registry._typed
        if typed is None:
            typed = registry._typed = TypedObjects(registry)
        try:
            return _decode_fast(data, typed, limits.max_depth)
        except Exception:
            pass  # the reference path decodes it or raises the exact error
    return _decode_reference(data, registry, limits)


def _fast_max(limits: DecodeLimits) -> int:
    """The largest message that cannot break a length limit, whatever it holds (a string or
    array is never longer than its message): the fast path, which checks no lengths, takes
    only those. The extensions it accepts (object headers, UUIDs, Timestamps) are all under
    128 bytes."""
    if limits.max_ext_len < 128:
        return -1
    return min(limits.max_str_len, limits.max_bin_len, limits.max_array_len, limits.max_map_len)


_DEFAULT_FAST_MAX = _fast_max(DEFAULT_LIMITS)


class _ObjectInside(Exception):
    """A signal: the container holds an object, walk it item by item."""


def _any_ext(code: int, payload: memoryview) -> Any:
    if code == UUID_EXT and len(payload) == 16:
        return uuid.UUID(bytes=bytes(payload))
    if code == OBJECT_EXT:
        raise _ObjectInside
    raise Fallback


_ANY = msgspec.msgpack.Decoder(ext_hook=_any_ext)
_ITEMS = msgspec.msgpack.Decoder(list[msgspec.Raw])
_ENTRIES = msgspec.msgpack.Decoder(dict[str, msgspec.Raw])
_KEY_TYPES = frozenset({str, bytes})


def _decode_fast(view: Any, typed: TypedObjects, depth_left: int) -> Any:
    """Decode one value (bytes-like): an object with its generated types, a container holding
    objects item by item, anything else as plain msgpack. Raises on anything it does not
    vouch for."""
    first = view[0]
    if first in {0x92, 0x93}:  # an array of 2 or 3: maybe [header, fields(, changes)]
        payload = _header_payload(view)
        if payload is not None:
            found = typed.by_header.get(payload)
            if found is None:
                found = typed.object_decoder(payload)
            decoder, build = found
            return build(decoder.decode(view))
    is_array = first >> 4 == 0x9 or first in {0xDC, 0xDD}
    if not (is_array or first >> 4 == 0x8 or first in {0xDE, 0xDF}):
        value = _ANY.decode(view)  # a scalar; an object header alone is refused
        if type(value) is datetime:
            raise Fallback  # msgspec rounds a Timestamp's nanoseconds: msgpack reads it
        return value
    try:
        value = _ANY.decode(view)
    except _ObjectInside:
        if depth_left <= 0:
            raise Fallback from None
        if is_array:
            return [_decode_item(item, typed, depth_left - 1) for item in _ITEMS.decode(view)]
        return {
            key: _decode_item(item, typed, depth_left - 1)
            for key, item in _ENTRIES.decode(view).items()
        }
    _check_plain(value, depth_left)
    return value


def _decode_item(item: msgspec.Raw, typed: TypedObjects, depth_left: int) -> Any:
    """One item of a container that holds objects: most items of an envelope are plain, and
    one msgspec call reads those (an item that is or holds an object stops it at once)."""
    try:
        value = _ANY.decode(item)
    except _ObjectInside:
        return _decode_fast(memoryview(item), typed, depth_left)
    kind = type(value)
    if kind is dict or kind is list:
        _check_plain(value, depth_left)
    elif kind is datetime:
        raise Fallback  # msgspec rounds a Timestamp's nanoseconds: msgpack reads it
    return value


def _header_payload(view: Any) -> bytes | None:
    """The payload of an object header extension at `view[1]`, or None if there is none."""
    marker = view[1]
    if 0xD4 <= marker <= 0xD8:  # fixext 1, 2, 4, 8, 16
        start, size, code = 3, 1 << (marker - 0xD4), view[2]
    elif marker == 0xC7:  # ext 8
        start, size, code = 4, view[2], view[3]
    else:
        return None
    return bytes(view[start : start + size]) if code == OBJECT_EXT else None


def _check_plain(value: Any, depth_left: int) -> None:
    """The reference decoder's depth and map key rules over plain data (no objects in it);
    a datetime outside an object is left to the reference decoder too."""
    kind = type(value)
    if kind is dict:
        if not _KEY_TYPES.issuperset(map(type, value)):
            raise Fallback
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return
    if depth_left <= 0:
        raise Fallback
    for item in items:
        item_kind = type(item)
        if item_kind is dict or item_kind is list:
            _check_plain(item, depth_left - 1)
        elif item_kind is datetime:
            raise Fallback  # msgspec rounds a Timestamp's nanoseconds: msgpack reads it


def _decode_reference(data: Any, registry: ObjectRegistry, limits: DecodeLimits) -> Any:
    hooks = registry._decode_hooks
    if hooks is None:
        hooks = registry._decode_hooks = _Hooks(registry)
    try:
        value = msgpack.unpackb(
            data,
            ext_hook=hooks.ext_hook,
            list_hook=hooks.list_hook,
            timestamp=3,
            strict_map_key=True,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_bin_len,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=limits.max_ext_len,
        )
    except (DecodeError, IncompatibleObjectVersion):
        raise
    except SchemaError as exc:
        raise DecodeError(reason=exc.message) from exc
    except (msgpack.UnpackException, ValueError, OverflowError) as exc:
        # OverflowError: a Timestamp beyond what a datetime can hold.
        raise DecodeError(reason=f"malformed msgpack: {str(exc) or type(exc).__name__}") from exc
    _check_containers(value, limits.max_depth)
    return value


class _Hooks:
    """The decoder's callbacks for one registry (kept on it: they hold no per-call state)."""

    __slots__ = ("ext_hook", "headers", "list_hook", "registry")

    def __init__(self, registry: ObjectRegistry) -> None:
        self.registry = registry
        self.headers = registry._headers
        # Bound once: msgpack calls these for every extension and every array.
        self.ext_hook = self._ext_hook
        self.list_hook = self._list_hook

    def _ext_hook(self, code: int, payload: bytes) -> Any:
        if code == OBJECT_EXT:
            header = self.headers.get(payload)
            return header if header is not None else self.registry.header(payload)
        if code == UUID_EXT:
            if len(payload) != 16:
                raise DecodeError(reason=f"a UUID needs 16 bytes, got {len(payload)}")
            return uuid.UUID(bytes=payload)
        raise DecodeError(reason=f"unknown msgpack extension type {code}")

    def _list_hook(self, items: list[Any]) -> Any:
        # The decoder's hot path: called for every array, bottom-up, so nested objects are
        # already built. Validation is inline: a value of the field's exact wire type that
        # passes its C-level predicate is taken as it is, anything else goes to from_wire.
        if not (items and type(items[0]) is ObjectHeader):
            return items
        header = items[0]
        cls = header.cls
        size = len(items)
        if size == 2:
            data, changes = items[1], None
        elif size == 3:
            data, changes = items[1], items[2]
        else:
            raise DecodeError(reason=f"{cls.OBJ_NAME}: an object is [header, fields(, changes)]")
        if type(data) is not dict:
            raise DecodeError(reason=f"{cls.OBJ_NAME}: fields must be a map")
        table = header.table
        for name, value in data.items():
            try:
                wire_type, check, nullable, from_wire = table[name]
            except KeyError:
                raise UnknownFieldError(objname=cls.OBJ_NAME, field=name) from None
            if type(value) is wire_type and (check is None or check(value)):
                continue
            if value is None and nullable:
                continue
            # Replacing the value of an existing key does not disturb the iteration.
            data[name] = from_wire(cls.OBJ_NAME, value)
        obj = _new_object(cls)
        obj._values = data
        obj._changed = wire_changes(cls, changes) if changes else None
        obj._orig = None
        obj.obj_context = None
        return obj


def _check_containers(value: Any, depth_left: int) -> None:
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    elif kind is ObjectHeader:
        raise DecodeError(reason="an object header outside an object")
    else:
        return
    if depth_left <= 0:
        raise DecodeError(reason="containers nested deeper than the depth limit")
    # Recurse only into what can nest: a call per scalar is most of this walk's cost.
    for item in items:
        item_kind = type(item)
        if item_kind is dict or item_kind is list or item_kind is ObjectHeader:
            _check_containers(item, depth_left - 1)


def _primitive_wire(primitive: ObjectPrimitive) -> list[Any]:
    header = msgpack.ExtType(OBJECT_EXT, object_header(primitive.name, primitive.version))
    if primitive.changes:
        return [header, primitive.data, sorted(primitive.changes)]
    return [header, primitive.data]


def _primitive_ext_wire(primitive: ObjectPrimitive) -> list[Any]:
    """`_primitive_wire` for msgspec, nested primitives included: msgspec packs a dataclass
    such as ObjectPrimitive itself, as a map, so they never reach its hook."""
    data = primitive.data
    for name, value in data.items():
        kind = type(value)
        if kind is ObjectPrimitive:
            converted: Any = _primitive_ext_wire(value)
        elif kind is list and any(type(item) is ObjectPrimitive for item in value):
            converted = [
                _primitive_ext_wire(item) if type(item) is ObjectPrimitive else item
                for item in value
            ]
        else:
            continue
        if data is primitive.data:
            data = dict(data)
        data[name] = converted
    header = msgspec.msgpack.Ext(OBJECT_EXT, object_header(primitive.name, primitive.version))
    if primitive.changes:
        return [header, data, sorted(primitive.changes)]
    return [header, data]


def _default(value: Any) -> Any:
    if isinstance(value, VersionedObject):
        # Runs for every object encoded: the value dict goes out as it is unless a field
        # needs its wire form (IP addresses, sets).
        cls = type(value)
        values = data = value._values
        for field in cls._obj_converting:
            item = values.get(field.name)
            if item is not None:
                if data is values:
                    data = dict(values)
                data[field.name] = field.to_wire(item)
        changes = value._changed if value._orig is None else value._obj_own_changes()
        if changes:
            return [cls._obj_wire_header, data, sorted(changes)]
        return [cls._obj_wire_header, data]
    if isinstance(value, ObjectPrimitive):
        return _primitive_wire(value)
    if isinstance(value, uuid.UUID):
        return msgpack.ExtType(UUID_EXT, value.bytes)
    if isinstance(value, datetime):
        raise EncodeError(reason=f"a naive datetime has no instant to encode: {value!r}")
    if isinstance(value, int):
        raise EncodeError(reason=f"{value} does not fit in 64 bits")
    raise EncodeError(reason=f"{type(value).__name__} values cannot be encoded: {value!r:.80}")


class _BackLevel:
    """The `default` hook of one encode call that back-levels objects to a peer's manifest."""

    __slots__ = ("manifest", "older")

    def __init__(self, manifest: Mapping[str, str]) -> None:
        self.manifest = manifest
        # Per class: does the peer want an older version than ours? Decided once per call.
        self.older: dict[type[VersionedObject], bool] = {}

    def default(self, value: Any) -> Any:
        if isinstance(value, VersionedObject):
            cls = type(value)
            older = self.older.get(cls)
            if older is None:
                older = self.older[cls] = _peer_is_older(cls, self.manifest.get(cls.OBJ_NAME))
            # At our version (or a newer peer's): its children are at versions the peer knows
            # too, because a parent's version pins its children's (OBJ_RELATIONSHIPS); the
            # hook still checks each child against the manifest as msgpack reaches it.
            if not older:
                return _default(value)
            return _primitive_wire(value.to_primitive(manifest=self.manifest))
        return _default(value)

    def enc_hook(self, value: Any) -> Any:
        """`default` for the msgspec encoder (`_object_wire` inlined: it runs per object)."""
        cls = type(value)
        older = self.older.get(cls)
        if older is None:
            if not isinstance(value, VersionedObject):
                raise TypeError(cls.__name__)  # the reference path reports it
            older = self.older[cls] = _peer_is_older(cls, self.manifest.get(cls.OBJ_NAME))
        if older:
            return _primitive_ext_wire(value.to_primitive(manifest=self.manifest))
        data = _converted(cls, value._values) if cls._obj_converting else value._values
        changes = value._changed if value._orig is None else value._obj_own_changes()
        if changes:
            return [cls._obj_wire_ext, data, sorted(changes)]
        return [cls._obj_wire_ext, data]


def _peer_is_older(cls: type[VersionedObject], wanted: str | None) -> bool:
    if wanted is None or wanted == cls.VERSION:
        return False
    try:
        version = parse_version(wanted)
    except ValueError:
        return True  # to_primitive reports it
    return version.major != cls._obj_version.major or version < cls._obj_version
