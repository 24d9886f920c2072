"""The wire, byte for byte: `encode` produces exactly the bytes recorded from the encoder an
older release shipped, for every object type, back-levelled encodes and RPC envelopes.

A peer of the previous release reads these bytes, so any change to how a value is packed is a
wire break, whatever the round-trip tests say. The samples are in `wire_samples.py`.
"""

from __future__ import annotations

import pytest

from schemas import decode, default_registry, encode
from tests.schemas import wire_samples

GOLDENS = wire_samples.read_goldens()
ENCODED = dict(wire_samples.encoded_samples())


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
def test_the_recorded_bytes_decode_and_encode_again_to_themselves(name: str) -> None:
    # Not for back-levelled samples: they decode as today's class, which encodes at today's
    # version. Envelopes carry their manifest as a plain string and qualify.
    data = GOLDENS[name]
    assert encode(decode(data)) == data
