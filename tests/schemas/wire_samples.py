"""Deterministic values for the byte-for-byte wire test, and the script that records them.

Every registered object type appears with every field set (two variants of values, so both
IPv4 and IPv6, both timestamp sizes and several integer widths occur), with only its required
shape (nullable fields None, the rest unset), with pending changes, and back-levelled to each
older minor version; around them, the hand-built samples the other tests use, plain values,
`ObjectPrimitive`s and RPC envelopes. `tests/schemas/test_wire_bytes.py` checks that `encode`
still produces exactly the bytes recorded in `data/wire_golden.txt`.

Record the goldens again only when the wire format changes on purpose (it never should within
a release series; an old peer reads these bytes):

    .venv/bin/python -m tests.schemas.wire_samples
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import schemas.objects  # noqa: F401  (registers the objects)
from schemas import (
    ObjectPrimitive,
    VersionedObject,
    default_registry,
    encode,
    fields,
)
from tests.schemas import samples

GOLDEN = Path(__file__).parent / "data" / "wire_golden.txt"

WHEN = datetime(2026, 11, 21, 12, 30, 15, 123456, tzinfo=UTC)
# Whole seconds within 32 bits: the 6-byte timestamp form.
WHEN_WHOLE = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# (sample name, value, peer manifest or None)
Sample = tuple[str, Any, Mapping[str, str] | None]


def field_value(field: fields.Field, variant: int, depth: int) -> Any:
    """A valid, deterministic value for `field`; `variant` 0 or 1 picks among two shapes."""
    name = field.name or "element"
    if isinstance(field, fields.ObjectField):
        return full_object(field.objname, variant, depth + 1)
    if isinstance(field, fields.ListOfObjectsField):
        return [full_object(field.objname, v, depth + 1) for v in (variant, 1 - variant)]
    if isinstance(field, fields.DictField):
        return {
            "first": field_value(field.element, variant, depth),
            "second": field_value(field.element, 1 - variant, depth),
        }
    if isinstance(field, fields.SetField):
        # One element: a set's iteration order is not stable across interpreter runs.
        return {field_value(field.element, variant, depth)}
    if isinstance(field, fields.ListField):
        return [field_value(field.element, v, depth) for v in (variant, 1 - variant, variant)]
    if isinstance(field, fields.EnumField):
        values = sorted(field.values)
        return values[(len(name) + variant) % len(values)]
    if isinstance(field, fields.BooleanField):
        return (len(name) + variant) % 2 == 0
    if isinstance(field, fields.IntegerField):
        # fixint, uint16, uint32, uint64 and a negative int across fields and variants.
        widths = (7, 4096, 2**31 + 5, 2**40 + 3, -3)
        return widths[(len(name) + variant) % len(widths)]
    if isinstance(field, fields.FloatField):
        return 1.5 + len(name) + variant
    if isinstance(field, fields.UUIDField):
        return str(uuid.UUID(int=(len(name) << 64) + 0x4000 + variant))
    if isinstance(field, fields.DateTimeField):
        return WHEN if variant == 0 else WHEN_WHOLE
    if isinstance(field, fields.IPAddressField):
        return ipaddress.ip_address("192.0.2.7" if variant == 0 else "2001:db8::7")
    if isinstance(field, fields.IPNetworkField):
        return ipaddress.ip_network("10.0.3.0/24" if variant == 0 else "2001:db8:3::/64")
    if isinstance(field, fields.MACAddressField):
        return f"fa:16:3e:00:00:{variant + len(name):02x}"
    if isinstance(field, fields.StringField):
        return f"{name}-{variant}" if variant == 0 else f"{name} ✓ {'x' * 40}"
    raise TypeError(f"no sample value for {field!r}")


def full_object(objname: str, variant: int = 0, depth: int = 0) -> VersionedObject:
    """An object of `objname` with every field set (object fields below depth 3 only)."""
    cls = default_registry.lookup(objname)
    obj = cls()
    for name, field in cls._obj_fields.items():
        if field.holds_objects and depth >= 3:
            continue
        setattr(obj, name, field_value(field, variant, depth))
    obj.obj_reset_changes(recursive=True)
    return obj


def sparse_object(objname: str) -> VersionedObject:
    """An object of `objname` with its nullable fields None and every other field unset."""
    cls = default_registry.lookup(objname)
    obj = cls()
    for name, field in cls._obj_fields.items():
        if field.nullable:
            setattr(obj, name, None)
    obj.obj_reset_changes(recursive=True)
    return obj


def changed_object(objname: str) -> VersionedObject:
    """A full object with its first and last writable fields assigned again: they travel as
    changes."""
    obj = full_object(objname, 1)
    names = [n for n, f in type(obj)._obj_fields.items() if not f.read_only]
    for name in {names[0], names[-1]}:
        setattr(obj, name, getattr(obj, name))
    return obj


def object_samples() -> Iterator[Sample]:
    for name in default_registry:
        cls = default_registry.lookup(name)
        yield f"{name}/full-0", full_object(name, 0), None
        yield f"{name}/full-1", full_object(name, 1), None
        yield f"{name}/sparse", sparse_object(name), None
        yield f"{name}/changed", changed_object(name), None
        yield f"{name}/empty", cls(), None
        version = cls._obj_version
        for minor in range(version.minor):
            older = f"{version.major}.{minor}"
            yield f"{name}/full-0@{older}", full_object(name, 0), {name: older}
            yield f"{name}/changed@{older}", changed_object(name), {name: older}
            yield (
                f"{name}/primitive@{older}",
                full_object(name, 1).to_primitive(target_version=older),
                None,
            )


def hand_samples() -> Iterator[Sample]:
    node = samples.compute_node()
    node.vcpus_used = 3
    inst = samples.instance(access_ip_v4="192.0.2.1", access_ip_v6="2001:db8::1")
    inst.metadata["added"] = "in place"
    inst.flavor.vcpus = 2
    yield "samples/instance", samples.instance(), None
    yield "samples/instance-changed-nested", inst, None
    yield "samples/compute-node-changed", node, None
    yield "samples/instance@1.0", samples.instance(), {"Instance": "1.0"}
    yield "samples/instance@1.1", samples.instance(), {"Instance": "1.1"}
    yield "samples/instance@1.2", samples.instance(), {"Instance": "1.2"}
    yield "samples/instance@flavor-1.0", samples.instance(), {"Flavor": "1.0"}
    yield "samples/compute-node@1.0", node, {"ComputeNode": "1.0"}
    yield "samples/manifest-newer-than-ours", samples.instance(), {"Instance": "1.9"}
    yield "samples/full-manifest", samples.instance(), default_registry.manifest()
    yield "samples/primitive", samples.instance().to_primitive(), None
    yield "samples/primitive@1.0", samples.instance().to_primitive(target_version="1.0"), None
    yield (
        "samples/primitive-by-hand@1.0",
        ObjectPrimitive("Flavor", "1.0", {"vcpus": 2, "name": "tiny"}, ["vcpus"]),
        None,
    )


def plain_samples() -> Iterator[Sample]:
    values: dict[str, Any] = {
        "none": None,
        "bools": [True, False],
        "ints": [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1, -1, -33, -(2**63)],
        "floats": [0.0, 1.25, -2.5e300, float("inf")],
        "strings": ["", "x" * 31, "x" * 32, "y" * 255, "y" * 256, "text ✓"],
        "bytes": [b"", b"\x00\xff", b"z" * 256],
        "nested": {"list": [1, "two", None, [3, [4]]], "map": {"k": {"k2": {}}}, "tuple": (1, 2)},
        "uuid": uuid.UUID("7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f"),
        "datetimes": [
            datetime(1970, 1, 1, tzinfo=UTC),
            WHEN,
            WHEN_WHOLE,
            datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),
            datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
            datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5))),
        ],
        "big-map": {f"key{n}": n for n in range(20)},
        "big-list": list(range(20)),
    }
    for name, value in values.items():
        yield f"plain/{name}", value, None
    yield (
        "plain/objects-in-containers@older",
        [1, "spawn", {"instance": samples.instance(), "flavors": [samples.flavor()]}],
        {"Instance": "1.1", "Flavor": "1.0"},
    )


def envelope_samples() -> Iterator[tuple[str, bytes]]:
    """RPC envelopes as `agent.rpc.envelope.pack` builds them (the bytes every call sends)."""
    # The RPC layer sits above schemas; its envelopes are recorded here because they are what
    # the wire carries, and only its pack function is used.
    from agent.rpc.envelope import Event, Kind, Reply, Request, pack
    from agent.rpc.manifest import Manifest
    from agent.rpc.remote_errors import WireError
    from schemas.objects import RequestContext

    ours = Manifest(default_registry.manifest())
    older = {"Instance": "1.0", "Flavor": "1.0", "ComputeNode": "1.1"}
    ctx = RequestContext(
        request_id="req-7f0d8f4e", user_id="u1", project_id="p1", roles=["admin"], deadline=1.5e9
    )
    request = Request(
        message_id="m-1",
        kind=Kind.CALL,
        method="spawn",
        host="compute-1",
        instance=samples.INSTANCE_UUID,
        context=ctx,
        args={"instance": samples.instance(), "image_meta": full_object("ImageMeta")},
        manifest=ours,
    )
    yield "envelope/request", pack(request)
    yield "envelope/request@older", pack(request, older)
    request.compact = True
    request.kind = Kind.CAST
    yield "envelope/cast-compact", pack(request)
    reply = Reply(message_id="m-1", result=samples.compute_node(), manifest=ours)
    yield "envelope/reply", pack(reply)
    yield "envelope/reply@older", pack(reply, older)
    error = WireError("InstanceNotFound", "instance x not found", {"uuid": "x"}, False)
    yield "envelope/reply-error", pack(Reply(message_id="m-2", error=error, manifest=ours))
    event = Event(
        topic="instance.lifecycle",
        sender_host="compute-1",
        payload=full_object("LifecycleEvent"),
        manifest=ours,
    )
    yield "envelope/event", pack(event)


def encoded_samples() -> Iterator[tuple[str, bytes]]:
    """(name, bytes) for every sample, in a stable order."""
    for source in (object_samples, hand_samples, plain_samples):
        for name, value, manifest in source():
            yield name, encode(value, manifest=manifest)
    yield from envelope_samples()


def read_goldens(path: Path = GOLDEN) -> dict[str, bytes]:
    goldens: dict[str, bytes] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, data = line.partition(" ")
            goldens[name] = bytes.fromhex(data)
    return goldens


def write_goldens(path: Path = GOLDEN) -> int:
    lines = [
        "# The bytes `schemas.encode` produces for tests/schemas/wire_samples.py, in hex.",
        "# Recorded by `.venv/bin/python -m tests.schemas.wire_samples`: never edit by hand.",
    ]
    count = 0
    for name, data in encoded_samples():
        lines.append(f"{name} {data.hex()}")
        count += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return count


if __name__ == "__main__":
    print(f"recorded {write_goldens()} samples in {GOLDEN}")
