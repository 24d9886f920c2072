"""The decoder under random, mutated and ill-typed input: a DecodeError or a valid value, always.

The one other outcome allowed is IncompatibleObjectVersion, the deliberate answer to an object
header naming a newer minor version (a mutated "1.1" can become "1.7"). A value that decodes
must be valid: it encodes again, and that encoding is stable.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    DEFAULT_LIMITS,
    DecodeError,
    IncompatibleObjectVersion,
    VersionedObject,
    codec,
    decode,
    default_registry,
    encode,
)
from schemas._typed import TypedObjects
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


# -- the fast decoder against the reference decoder ---------------------------------------------
#
# `decode` reads through msgspec's generated types and falls back to the reference decoder
# (msgpack and the field tables) for anything the fast path does not vouch for. The promise
# that makes the pair one decoder: whatever the fast path accepts, the reference decoder
# accepts too, with the same value. Every input the reference refuses is therefore refused.


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down, objects with the same changes."""
    if type(a) is not type(b):
        return False
    if isinstance(a, VersionedObject):
        return (
            a._values.keys() == b._values.keys()
            and all(same(v, b._values[k]) for k, v in a._values.items())
            and a._changed == b._changed
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list | set):
        return len(a) == len(b) and all(
            same(x, y) for x, y in zip(sorted_if_set(a), sorted_if_set(b), strict=True)
        )
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo
    return bool(a == b)


def sorted_if_set(value: Any) -> Any:
    return sorted(value, key=repr) if isinstance(value, set) else value


def check_fast_agrees(data: bytes) -> None:
    typed = default_registry._typed or TypedObjects(default_registry)
    try:
        fast = codec._decode_fast(memoryview(data), typed, DEFAULT_LIMITS.max_depth)
    except Exception:
        return  # left to the reference decoder, whatever it says
    reference = codec._decode_reference(data, default_registry, DEFAULT_LIMITS)
    assert same(fast, reference), (fast, reference)


def test_the_fast_path_reads_objects_and_envelopes_itself_as_the_reference_does() -> None:
    typed = default_registry._typed or TypedObjects(default_registry)
    # The last seed holds a datetime outside any object: that one is left to the reference.
    for data in SEEDS[:-1]:
        check_fast_agrees(data)
        codec._decode_fast(memoryview(data), typed, DEFAULT_LIMITS.max_depth)  # no fallback


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_the_fast_path_accepts_the_reference_accepts_alike(data: bytes) -> None:
    check_fast_agrees(data)


@FUZZ
@given(mutated())
def test_mutated_encodings_the_fast_path_accepts_the_reference_accepts_alike(data: bytes) -> None:
    check_fast_agrees(data)


@FUZZ_STRUCTURED
@given(ill_typed_objects())
def test_ill_typed_objects_the_fast_path_accepts_the_reference_accepts_alike(data: bytes) -> None:
    check_fast_agrees(data)
