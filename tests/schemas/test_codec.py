"""The codec: exact round trips, and a strict, bounded decoder with one error type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgpack
import pytest

from schemas import (
    DecodeError,
    DecodeLimits,
    EncodeError,
    IncompatibleObjectVersion,
    ObjectRegistry,
    UnsetFieldError,
    VersionedObject,
    decode,
    encode,
    fields,
)
from schemas.objects import Flavor, Instance, RequestContext
from tests.schemas import samples


def test_an_instance_tree_survives_the_round_trip_exactly() -> None:
    inst = samples.instance()
    back = decode(encode(inst))
    assert type(back) is Instance
    assert back == inst
    assert back.launched_at == samples.WHEN
    assert back.launched_at.tzinfo is UTC
    assert (
        back.network_info[0].network.subnets[1].ips == inst.network_info[0].network.subnets[1].ips
    )


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -1,
        2**64 - 1,
        -(2**63),
        1.25,
        "text ✓",
        b"\x00\xff",
        [],
        {},
        [1, [2, [3]]],
        {"nested": {"list": [1, "two", None]}},
        uuid.UUID("7f0d8f4e-1c2b-4a3d-9e8f-0a1b2c3d4e5f"),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),
        datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_plain_values_datetimes_and_uuids_round_trip_exactly(value: Any) -> None:
    back = decode(encode(value))
    assert back == value
    assert type(back) is type(value)


def test_objects_nested_in_plain_containers_round_trip() -> None:
    ctx = RequestContext(request_id="req-1", roles=["admin"], deadline=1764000000.5)
    envelope = [1, "spawn", {"context": ctx, "instance": samples.instance()}, uuid.UUID(int=5)]
    back = decode(encode(envelope))
    assert back == envelope
    assert type(back[2]["context"]) is RequestContext


def test_an_aware_datetime_in_another_zone_decodes_as_the_same_instant_in_utc() -> None:
    when = datetime(2026, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=-5)))
    back = decode(encode(when))
    assert back == when
    assert back.tzinfo is UTC


def test_tuples_decode_as_lists() -> None:
    assert decode(encode((1, (2, 3)))) == [1, [2, 3]]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            datetime(2026, 1, 1),
            "a naive datetime has no instant to encode: datetime.datetime(2026, 1, 1, 0, 0)",
        ),
        ({1, 2}, "set values cannot be encoded: {1, 2}"),
        (object, "type values cannot be encoded: <class 'object'>"),
        (2**64, "18446744073709551616 does not fit in 64 bits"),
    ],
)
def test_encode_refuses_what_the_wire_cannot_carry(value: Any, reason: str) -> None:
    with pytest.raises(EncodeError) as exc:
        encode(value)
    assert exc.value.reason == reason
    assert str(exc.value) == f"cannot encode: {reason}"


def test_encode_is_deterministic_for_the_same_object() -> None:
    inst = samples.instance()
    inst.host = "a"
    inst.node = "b"
    assert encode(inst) == encode(inst)


# -- strict decoding ---------------------------------------------------------------------------


def raw_object(name: str, version: str, data: Any, *extra: Any) -> bytes:
    header = msgpack.ExtType(1, f"{name} {version}".encode())
    return msgpack.packb([header, data, *extra], use_bin_type=True)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "malformed msgpack: Unpack failed: incomplete input"),
        (b"\xc1", "malformed msgpack: FormatError"),
        (b"\x92\x01", "malformed msgpack: Unpack failed: incomplete input"),
        (b"\x01\x02", "malformed msgpack: unpack(b) received extra data."),
        (
            msgpack.packb({1: 2}),
            "malformed msgpack: int is not allowed for map key when strict_map_key=True",
        ),
        (msgpack.packb(msgpack.ExtType(9, b"x")), "unknown msgpack extension type 9"),
        (msgpack.packb(msgpack.ExtType(2, b"short")), "a UUID needs 16 bytes, got 5"),
        (msgpack.packb(msgpack.ExtType(1, b"nospace")), "malformed object header b'nospace'"),
        (raw_object("Starship", "1.0", {}), "unknown object type 'Starship'"),
        (
            msgpack.packb([msgpack.ExtType(1, b"Flavor 1.0")]),
            "Flavor: an object is [header, fields(, changes)]",
        ),
        (raw_object("Flavor", "1.0", [1, 2]), "Flavor: fields must be a map"),
        (raw_object("Flavor", "1.0", {"warp": 9}), "Flavor has no field 'warp'"),
        (raw_object("Flavor", "1.0", {"vcpus": "2"}), "Flavor.vcpus: expected an integer, got '2'"),
        (
            raw_object("Flavor", "1.0", {"vcpus": None}),
            "Flavor.vcpus: expected an integer, got None",
        ),
        (
            raw_object("Flavor", "1.0", {"extra_specs": {"a": 1}}),
            "Flavor.extra_specs['a']: expected a string, got 1",
        ),
        (raw_object("Flavor", "1.0", {"vcpus": 1}, ["warp"]), "Flavor has no field 'warp'"),
        (
            raw_object("Flavor", "1.0", {"vcpus": 1}, "vcpus"),
            "Flavor.<changes>: expected a list of field names, got 'vcpus'",
        ),
        (
            raw_object("Instance", "1.0", {"flavor": {"vcpus": 1}}),
            "Instance.flavor: expected a Flavor object, got {'vcpus': 1}",
        ),
        (
            msgpack.packb([1, msgpack.ExtType(1, b"Flavor 1.0")]),
            "an object header outside an object",
        ),
        (
            raw_object("Flavor", "1.01", {}),
            "Flavor version 1.01 is not supported (this side has 1.1): malformed version",
        ),
    ],
)
def test_bad_input_is_one_typed_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(data)
    assert exc.value.reason == reason
    assert str(exc.value) == f"cannot decode: {reason}"


def test_a_non_bytes_argument_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as exc:
        decode("text")  # type: ignore[arg-type]
    assert exc.value.reason == "expected bytes, got str"


def test_an_object_in_a_field_of_another_object_type_is_refused() -> None:
    wrong = samples.instance()
    wrong._values["flavor"] = samples.compute_node()  # bypasses assignment checks on purpose
    with pytest.raises(DecodeError) as exc:
        decode(encode(wrong))
    assert exc.value.reason.startswith(
        "Instance.flavor: expected a Flavor object, got ComputeNode("
    )


# -- limits ------------------------------------------------------------------------------------


def test_a_message_over_the_size_limit_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(encode("x" * 100), limits=DecodeLimits(max_size=64))
    assert exc.value.reason == "message of 102 bytes is over the limit of 64"


@pytest.mark.parametrize(
    ("value", "limits"),
    [
        ("x" * 50, DecodeLimits(max_str_len=49)),
        (b"x" * 50, DecodeLimits(max_bin_len=49)),
        (list(range(50)), DecodeLimits(max_array_len=49)),
        ({str(i): i for i in range(50)}, DecodeLimits(max_map_len=49)),
        (uuid.UUID(int=1), DecodeLimits(max_ext_len=15)),
    ],
)
def test_container_and_string_lengths_over_their_limits_are_refused(
    value: Any, limits: DecodeLimits
) -> None:
    data = encode(value)
    assert decode(data) == value
    with pytest.raises(DecodeError) as exc:
        decode(data, limits=limits)
    assert exc.value.reason.startswith("malformed msgpack: ")
    assert "exceeds max_" in exc.value.reason


def test_nesting_deeper_than_the_depth_limit_is_refused() -> None:
    value: Any = "leaf"
    for _ in range(10):
        value = [value]
    assert decode(encode(value), limits=DecodeLimits(max_depth=10)) == value
    with pytest.raises(DecodeError) as exc:
        decode(encode(value), limits=DecodeLimits(max_depth=9))
    assert exc.value.reason == "containers nested deeper than the depth limit"


def test_nesting_beyond_the_parsers_own_stack_is_a_decode_error() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(b"\x91" * 5000 + b"\xc0")
    assert exc.value.reason.startswith("malformed msgpack")


# -- registries --------------------------------------------------------------------------------


def test_decode_uses_the_registry_it_is_given() -> None:
    other = ObjectRegistry()

    @other.register
    class OtherFlavor(VersionedObject):  # the same name, another release's class
        VERSION = "1.0"
        OBJ_NAME = "Flavor"
        __slots__ = ()
        name: str = fields.String()

    data = encode(OtherFlavor(name="tiny"))
    theirs = decode(data, registry=other)
    assert type(theirs) is OtherFlavor
    ours = decode(data)
    assert type(ours) is Flavor
    assert ours.name == "tiny"
    with pytest.raises(IncompatibleObjectVersion):
        decode(encode(samples.flavor()), registry=other)
    with pytest.raises(DecodeError) as exc:
        decode(encode(samples.flavor(), manifest={"Flavor": "1.0"}), registry=other)
    assert exc.value.reason == "Flavor has no field 'flavorid'"


def test_an_object_of_a_name_another_registry_lacks_is_unknown_there() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(encode(samples.flavor()), registry=ObjectRegistry())
    assert exc.value.reason == "unknown object type 'Flavor'"


def test_flavor_without_a_description_is_read_as_unset() -> None:
    old = Flavor.from_primitive(samples.flavor().to_primitive(target_version="1.0"))
    assert not old.obj_attr_is_set("description")


# -- decoded objects ---------------------------------------------------------------------------


def test_a_decoded_objects_unset_field_raises_unset_field_error_not_attribute_error() -> None:
    back = decode(encode(Flavor(flavorid="m1.tiny")))
    with pytest.raises(UnsetFieldError) as exc:
        _ = back.name
    assert exc.value.field == "name"
    with pytest.raises(AttributeError) as missing:
        _ = back.warp  # type: ignore[attr-defined]
    assert str(missing.value) == "'Flavor' object has no attribute 'warp'"


def test_a_decoded_trees_nested_objects_are_made_once_and_track_changes() -> None:
    back = decode(encode(samples.instance()))
    assert back.flavor is back.flavor
    assert back.network_info.objects[0] is back.network_info.objects[0]
    assert back.obj_what_changed() == set()
    back.network_info.objects[0].network.mtu = 9000
    assert back.obj_what_changed() == {"network_info"}
    assert decode(encode(back)).network_info.objects[0].network.mtu == 9000
