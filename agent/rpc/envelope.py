"""The RPC envelope: what every message on the bus looks like, and its strict decoding.

On the wire an envelope is one msgpack array encoded by `schemas.encode`, so versioned
objects inside it (arguments, results, the request context) keep their name and version:

    request  [1, kind, message_id, method, host, instance, context, args, manifest, rpc_version]
    reply    [1, REPLY, message_id, result, error, manifest]
    event    [1, EVENT, topic, sender_host, payload, manifest]

`manifest` is the sender's object manifest ({object name: newest version it knows}, as one
string: see `Manifest`), or in a call and its reply the manifest's digest (`compact`); the
receiver back-levels what it sends back to it. The leading 1 is the envelope layout version;
`rpc_version` is the RPC API version the request is made in (`agent.rpc.api_version`).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack  # type: ignore[import-untyped]

from agent.observability.tracing import TraceParent
from agent.rpc.api_version import RPC_API_VERSION  # the version a request names, by default
from agent.rpc.manifest import DIGEST_PREFIX, Manifest, UnknownManifestDigest
from agent.rpc.remote_errors import WireError
from schemas import DecodeError, DecodeLimits, ObjectRegistry, decode, encode

ENVELOPE_VERSION = 1


class Kind(enum.IntEnum):
    CALL = 1
    CAST = 2
    REPLY = 3
    EVENT = 4


@dataclass(slots=True)
class Request:
    message_id: str
    kind: Kind
    method: str
    host: str
    instance: str | None
    context: Any
    args: dict[str, Any]
    manifest: Manifest = field(default_factory=lambda: Manifest({}))
    rpc_version: str = RPC_API_VERSION
    compact: bool = False  # the manifest travels as its digest
    # Not packed: the trace it is sent in travels in the message's headers.
    trace: TraceParent | None = None
    # Not packed: the signed identity the transport verified it came from (None: unsigned).
    sender: str | None = None


@dataclass(slots=True)
class Reply:
    message_id: str
    result: Any = None
    error: WireError | None = None
    manifest: Manifest = field(default_factory=lambda: Manifest({}))
    # Sent with the manifest as its digest. A decoded reply whose digest is not known here has
    # an empty manifest.
    compact: bool = False


@dataclass(slots=True)
class Event:
    topic: str
    sender_host: str
    payload: Any
    manifest: Manifest = field(default_factory=lambda: Manifest({}))


Envelope = Request | Reply | Event


def pack(envelope: Envelope, target: Mapping[str, str] | None = None) -> bytes:
    """Encode `envelope`, back-levelling every object in it to the `target` manifest."""
    if isinstance(envelope, Request):
        body: list[Any] = [
            ENVELOPE_VERSION,
            int(envelope.kind),
            envelope.message_id,
            envelope.method,
            envelope.host,
            envelope.instance,
            envelope.context,
            envelope.args,
            envelope.manifest.digest if envelope.compact else envelope.manifest.wire,
            envelope.rpc_version,
        ]
    elif isinstance(envelope, Reply):
        error = None if envelope.error is None else envelope.error.to_primitive()
        body = [
            ENVELOPE_VERSION,
            int(Kind.REPLY),
            envelope.message_id,
            envelope.result,
            error,
            envelope.manifest.digest if envelope.compact else envelope.manifest.wire,
        ]
    else:
        body = [
            ENVELOPE_VERSION,
            int(Kind.EVENT),
            envelope.topic,
            envelope.sender_host,
            envelope.payload,
            envelope.manifest.wire,
        ]
    return encode(body, manifest=target or None)


def unpack(data: bytes, registry: ObjectRegistry, limits: DecodeLimits) -> Envelope:
    """Decode and check the envelope's shape. Raises `DecodeError` (or its version subclass)."""
    body = decode(data, registry=registry, limits=limits)
    if not isinstance(body, list) or len(body) < 2:
        raise DecodeError(reason=f"an envelope is an array, not {type(body).__name__}")
    if body[0] != ENVELOPE_VERSION:
        raise DecodeError(reason=f"unknown envelope layout version {body[0]!r}")
    try:
        kind = Kind(body[1])
    except ValueError:
        raise DecodeError(reason=f"unknown envelope kind {body[1]!r}") from None
    if kind in (Kind.CALL, Kind.CAST):
        return _request(kind, body)
    if kind is Kind.REPLY:
        return _reply(body)
    return _event(body)


# The request items that make a call what it is: kind, method, host, instance, args. Not the
# message id, nor what a re-send may change (context and its deadline, manifest or its digest,
# RPC version).
_CALL_ITEMS = (False, True, False, True, True, True, False, True)


def request_digest(data: bytes) -> bytes:
    """A digest of the call `data` (a request `unpack` accepted) makes, from its encoded items:
    equal for re-sends of one call, different for another method, target or arguments."""
    unpacker = msgpack.Unpacker(max_buffer_size=len(data))
    unpacker.feed(data)
    unpacker.read_array_header()
    view = memoryview(data)
    digest = hashlib.sha256()
    for wanted in _CALL_ITEMS:
        start = unpacker.tell()
        unpacker.skip()
        if wanted:
            digest.update(view[start : unpacker.tell()])
    return digest.digest()


def _request(kind: Kind, body: list[Any]) -> Request:
    _arity(body, 10, kind)
    _, _, message_id, method, host, instance, context, args, manifest, rpc_version = body
    _expect(message_id, str, "message_id")
    _expect(method, str, "method")
    _expect(host, str, "host")
    if instance is not None:
        _expect(instance, str, "instance")
    _expect(args, dict, "args")
    if not all(isinstance(name, str) for name in args):
        raise DecodeError(reason="argument names must be strings")
    _expect(rpc_version, str, "rpc_version")
    return Request(
        message_id,
        kind,
        method,
        host,
        instance,
        context,
        args,
        Manifest.from_wire(manifest),
        rpc_version,
        _is_digest(manifest),
    )


def _reply(body: list[Any]) -> Reply:
    _arity(body, 6, Kind.REPLY)
    _, _, message_id, result, error, manifest = body
    _expect(message_id, str, "message_id")
    try:
        wire_error = None if error is None else WireError.from_primitive(error)
    except ValueError as exc:
        raise DecodeError(reason=str(exc)) from None
    return Reply(message_id, result, wire_error, _known_manifest(manifest))


def _event(body: list[Any]) -> Event:
    _arity(body, 6, Kind.EVENT)
    _, _, topic, sender_host, payload, manifest = body
    _expect(topic, str, "topic")
    _expect(sender_host, str, "sender_host")
    return Event(topic, sender_host, payload, _known_manifest(manifest))


def _is_digest(manifest: object) -> bool:
    return isinstance(manifest, str) and manifest.startswith(DIGEST_PREFIX)


def _known_manifest(text: object) -> Manifest:
    """A reply or an event is read even when its sender's manifest digest is not known here:
    it only keeps the receiver from learning that manifest this time."""
    try:
        return Manifest.from_wire(text)
    except UnknownManifestDigest:
        return _NO_MANIFEST


_NO_MANIFEST = Manifest({})


def _arity(body: list[Any], size: int, kind: Kind) -> None:
    if len(body) != size:
        raise DecodeError(
            reason=f"a {kind.name.lower()} envelope has {size} items, not {len(body)}"
        )


def _expect(value: Any, expected: type, name: str) -> None:
    if not isinstance(value, expected):
        raise DecodeError(
            reason=f"envelope {name} must be {expected.__name__}, not {type(value).__name__}"
        )
