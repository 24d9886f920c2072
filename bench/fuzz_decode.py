"""The decoder under a million mutated inputs: every one ends in a `DecodeError` (or the
deliberate `IncompatibleObjectVersion`) or in a valid value that encodes again stably.

    .venv/bin/python -m bench.fuzz_decode [--inputs 1000000] [--seed 1] [--workers 2]

The test suite keeps its own, shorter fuzz (tests/schemas/test_decode_fuzz.py, hypothesis);
this is the long run, outside the suite's time. Inputs are made deterministically from the
seed: mutations of real encodings (an Instance, a ComputeNode, an RPC-shaped list, a map of
datetimes and bytes) — bit flips, byte changes, insertions, deletions, truncations, splices
of two encodings, repeated slices — and random bytes. It prints the outcomes, the rate, and
every input that broke the promise (exit status 1 then).
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

from schemas import DecodeError, IncompatibleObjectVersion, decode, encode
from schemas.objects import RequestContext
from tests.schemas import samples


def seeds() -> list[bytes]:
    node = samples.compute_node()
    node.vcpus_used = 3
    return [
        encode(samples.instance()),
        encode(node),
        encode(
            [1, "spawn", {"ctx": RequestContext(request_id="r", deadline=1.5)}, uuid.UUID(int=9)]
        ),
        encode({"when": datetime(2026, 1, 1, tzinfo=UTC), "n": [1, 2.5, None, b"x", "y"]}),
    ]


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = bytearray(rng.choice(corpus))
    kind = rng.randrange(8)
    if kind == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600)))
    for _ in range(rng.randrange(1, 6)):
        if not data:
            break
        at = rng.randrange(len(data))
        if kind == 1:
            data[at] ^= 1 << rng.randrange(8)
        elif kind == 2:
            data[at] = rng.getrandbits(8)
        elif kind == 3:
            data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 9)))
        elif kind == 4:
            del data[at : at + rng.randrange(1, 9)]
        elif kind == 5:
            del data[at:]
        elif kind == 6:
            other = rng.choice(corpus)
            data[at:] = other[rng.randrange(len(other)) :]
        else:
            piece = data[at : at + rng.randrange(1, 32)]
            data[at:at] = piece * rng.randrange(1, 4)
    return bytes(data)


def outcome(data: bytes) -> str:
    """The input's outcome; raises AssertionError (or anything else) when the promise broke."""
    try:
        value = decode(data)
    except DecodeError as exc:
        return type(exc).__name__
    except IncompatibleObjectVersion:
        return "IncompatibleObjectVersion"
    again = encode(value)
    assert encode(decode(again)) == again, "a decoded value does not encode again stably"
    return "valid"


def run(job: tuple[int, int]) -> tuple[Counter[str], list[tuple[str, str]]]:
    seed, count = job
    rng = random.Random(seed)
    corpus = seeds()
    counts: Counter[str] = Counter()
    broken: list[tuple[str, str]] = []
    for _ in range(count):
        data = mutate(rng, corpus)
        try:
            counts[outcome(data)] += 1
        except Exception as exc:  # the promise broke: keep the input to replay it
            counts["BROKEN"] += 1
            if len(broken) < 20:
                broken.append((data.hex(), f"{type(exc).__name__}: {exc}"))
    return counts, broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    chunks = 50
    per = args.inputs // chunks
    jobs = [(args.seed * 1_000_003 + n, per) for n in range(chunks)]
    started = time.perf_counter()
    total: Counter[str] = Counter()
    broken: list[tuple[str, str]] = []
    with multiprocessing.Pool(args.workers) as pool:
        for counts, found in pool.imap_unordered(run, jobs):
            total.update(counts)
            broken.extend(found)
    elapsed = time.perf_counter() - started
    done = sum(total.values())
    print(f"{done} inputs in {elapsed:.1f} s ({done / elapsed:,.0f}/s, {args.workers} workers)")
    for name, count in total.most_common():
        print(f"  {name:28} {count:>9}")
    for data, why in broken[:20]:
        print(f"BROKEN {why}: {data[:200]}")
    return 1 if total["BROKEN"] else 0


if __name__ == "__main__":
    sys.exit(main())
