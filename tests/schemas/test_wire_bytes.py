"""The wire, byte for byte: `encode` produces exactly the bytes recorded from the encoder an
older release shipped, for every object type, back-levelled encodes and RPC envelopes.

A peer of the previous release reads these bytes, so any change to how a value is packed is a
wire break, whatever the round-trip tests say. The samples are in `wire_samples.py`.
"""

from __future__ import annotations

import pytest

from schemas import ObjectPrimitive, VersionedObject, decode, default_registry, encode
from tests.schemas import wire_samples

GOLDENS = wire_samples.read_goldens()
ENCODED = dict(wire_samples.encoded_samples())
SAMPLES = {
    name: value
    for source in (wire_samples.object_samples, wire_samples.hand_samples)
    for name, value, manifest in source()
    if manifest is None
}


def test_every_sample_has_a_recorded_golden_and_every_golden_a_sample() -> None:
    assert sorted(ENCODED) == sorted(GOLDENS)


def test_every_registered_object_type_is_among_the_samples() -> None:
    covered = {name.partition("/")[0] for name in GOLDENS}
    assert set(default_registry) <= covered


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_encode_produces_the_recorded_bytes(name: str) -> None:
    got = ENCODED[name]
    want = GOLDENS[name]
    if got != want:
        at = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        pytest.fail(
            f"{name}: {len(got)} bytes, recorded {len(want)}; first difference at byte {at}: "
            f"got {got[at : at + 16].hex()}, recorded {want[at : at + 16].hex()}"
        )


@pytest.mark.parametrize("name", sorted(n for n in GOLDENS if "@" not in n))
def test_the_recorded_bytes_decode_to_a_value_that_encodes_stably(name: str) -> None:
    # Not for back-levelled samples: they decode as today's class, which encodes at today's
    # version. A decoded object holds its fields in declaration order (a map's order means
    # nothing on the wire), so its bytes are the recorded ones up to the order of map keys.
    data = GOLDENS[name]
    value = decode(data)
    again = encode(value)
    assert decode(again) == value
    assert encode(decode(again)) == again
    assert len(again) == len(data)


@pytest.mark.parametrize("name", sorted(n for n in SAMPLES if "@" not in n))
def test_the_recorded_bytes_decode_to_the_sample_they_were_encoded_from(name: str) -> None:
    value = SAMPLES[name]
    if isinstance(value, ObjectPrimitive):
        value = VersionedObject.from_primitive(value)
    back = decode(GOLDENS[name])
    assert type(back) is type(value)
    assert back == value
    assert back.obj_what_changed() == value.obj_what_changed()
