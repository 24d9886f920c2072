"""The decoder under random, mutated and ill-typed input: a DecodeError or a valid value, always.

The one other outcome allowed is IncompatibleObjectVersion, the deliberate answer to an object
header naming a newer minor version (a mutated "1.1" can become "1.7"). A value that decodes
must be valid: it encodes again, and that encoding is stable.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import DecodeError, IncompatibleObjectVersion, decode, default_registry, encode
from schemas.objects import RequestContext
from tests.schemas import samples
from tests.schemas.conftest import FUZZ_PROFILE

FUZZ = settings(
    settings.get_profile(FUZZ_PROFILE),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Generating nested msgpack values costs about 5 ms an example: a tenth as many keeps the
# whole module near 40 s in CI.
FUZZ_STRUCTURED = settings(FUZZ, max_examples=max(100, FUZZ.max_examples // 10))


def seeds() -> list[bytes]:
    node = samples.compute_node()
    node.vcpus_used = 3  # carries a change list too
    return [
        encode(samples.instance()),
        encode(node),
        encode(
            [1, "spawn", {"ctx": RequestContext(request_id="r", deadline=1.5)}, uuid.UUID(int=9)]
        ),
        encode({"when": datetime(2026, 1, 1, tzinfo=UTC), "n": [1, 2.5, None, b"x", "y"]}),
    ]


SEEDS = seeds()


def check_decode(data: bytes) -> None:
    try:
        value = decode(data)
    except (DecodeError, IncompatibleObjectVersion):
        return
    again = encode(value)
    assert encode(decode(again)) == again


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_decode_to_a_decode_error_or_a_valid_value(data: bytes) -> None:
    check_decode(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        if operation == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set":
            data[at] = draw(
                st.sampled_from(
                    [0x00, 0x7F, 0x80, 0xC0, 0xC1, 0xC7, 0xD4, 0xDC, 0xDD, 0xDE, 0xDF, 0xFF]
                )
            )
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif operation == "truncate":
            del data[at:]
        else:
            other = draw(st.sampled_from(SEEDS))
            start = draw(st.integers(0, len(other) - 1))
            data[at:at] = other[start : start + draw(st.integers(1, 64))]
    return bytes(data)


@FUZZ
@given(mutated())
def test_mutated_valid_encodings_decode_to_a_decode_error_or_a_valid_value(data: bytes) -> None:
    check_decode(data)


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20))
    | st.builds(msgpack.Timestamp, st.integers(-(2**40), 2**40), st.integers(0, 999_999_999)),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def ill_typed_objects(draw: st.DrawFn) -> bytes:
    """Well-formed msgpack shaped like an object, with field values of any type."""
    name = draw(st.sampled_from(sorted(default_registry)))
    cls = default_registry.lookup(name)
    minor = draw(st.integers(0, cls._obj_version.minor))
    header = msgpack.ExtType(1, f"{name} {cls._obj_version.major}.{minor}".encode())
    names = st.sampled_from(cls.obj_fields()) | st.text(max_size=6)
    data = draw(st.dictionaries(names, msgpack_values, max_size=6))
    item: list[Any] = [header, data]
    if draw(st.booleans()):
        item.append(draw(st.lists(names, max_size=3)))
    return msgpack.packb(item, use_bin_type=True)


@FUZZ_STRUCTURED
@given(ill_typed_objects())
def test_objects_with_ill_typed_fields_decode_to_a_decode_error_or_a_valid_object(
    data: bytes,
) -> None:
    check_decode(data)
