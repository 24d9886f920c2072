"""Wire values as JSON documents, for the JSON columns: nested objects, dicts, lists, sets.

A later release must read what this one wrote, so the encoding is explicit and versioned by
its content, not by Python types. JSON has null, booleans, numbers, strings, arrays and
objects; the other wire values are JSON objects with exactly one key, a `$` tag:

    ObjectPrimitive   {"$object": {"name": "Flavor", "version": "1.1", "data": {...}}}
    datetime (UTC)    {"$datetime": "2026-11-21T12:30:15.123456+00:00"}
    bytes             {"$bytes": "<base64>"}            (IPv6 addresses and networks)
    NaN, ±infinity    {"$float": "nan" | "inf" | "-inf"}  (JSON has no such numbers)
    a dict that would read as a tag (one key, starting with "$")   {"$dict": {...}}

Every other JSON object is a dict of the wire value. A stored object carries no pending
changes: an ObjectPrimitive's `changes` are not written and read back empty.
"""

from __future__ import annotations

import base64
import binascii
import math
from datetime import UTC, datetime
from typing import Any

from schemas.compat import ObjectPrimitive
from schemas.errors import DecodeError, EncodeError

_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def to_json(value: Any) -> Any:
    """The JSON document (plain dicts, lists, str, int, float, bool, None) of a wire value."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, ObjectPrimitive):
        data = {name: to_json(v) for name, v in value.data.items()}
        return {"$object": {"name": value.name, "version": value.version, "data": data}}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        out = {_key(k): to_json(v) for k, v in value.items()}
        return {"$dict": out} if _looks_tagged(out) else out
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise EncodeError(reason=f"a naive datetime cannot be stored: {value!r}")
        return {"$datetime": value.astimezone(UTC).isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    raise EncodeError(reason=f"{type(value).__name__} is not a wire value: {value!r}")


def from_json(doc: Any) -> Any:
    """The wire value of a document `to_json` wrote; DecodeError for anything else."""
    if doc is None or isinstance(doc, bool | str | int | float):
        return doc
    if isinstance(doc, list):
        return [from_json(v) for v in doc]
    if not isinstance(doc, dict):
        raise DecodeError(reason=f"stored JSON holds a {type(doc).__name__}: {doc!r}")
    if not _looks_tagged(doc):
        return {k: from_json(v) for k, v in doc.items()}
    ((tag, body),) = doc.items()
    decode = _TAGS.get(tag)
    if decode is None:
        raise DecodeError(reason=f"stored JSON has an unknown tag {tag!r}")
    try:
        return decode(body)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise DecodeError(reason=f"stored JSON {tag} is malformed: {body!r}") from exc


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise EncodeError(reason=f"a dict key must be a string to be stored, got {key!r}")
    return key


def _looks_tagged(doc: dict[str, Any]) -> bool:
    return len(doc) == 1 and next(iter(doc)).startswith("$")


def _object(body: Any) -> ObjectPrimitive:
    name, version, data = body["name"], body["version"], body["data"]
    if not (isinstance(name, str) and isinstance(version, str) and isinstance(data, dict)):
        raise TypeError(body)
    return ObjectPrimitive(name, version, {k: from_json(v) for k, v in data.items()})


def _datetime(body: Any) -> datetime:
    when = datetime.fromisoformat(body)
    if when.utcoffset() is None:
        raise ValueError(body)
    return when.astimezone(UTC)


def _bytes(body: Any) -> bytes:
    return base64.b64decode(body.encode("ascii"), validate=True)


def _float(body: Any) -> float:
    return _FLOATS[body] if isinstance(body, str) and body in _FLOATS else _bad(body)


def _dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise TypeError(body)
    return {k: from_json(v) for k, v in body.items()}


def _bad(body: Any) -> Any:
    raise ValueError(body)


_TAGS = {
    "$object": _object,
    "$datetime": _datetime,
    "$bytes": _bytes,
    "$float": _float,
    "$dict": _dict,
}
