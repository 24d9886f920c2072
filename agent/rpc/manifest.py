"""`Manifest`: the object versions a peer understands, as it travels in every envelope.

On the wire a manifest is one string, `"Flavor=1.1 Instance=1.2 ..."`, not a map: a receiver
that has seen the same string before (the common case: a peer's manifest changes only when it
is upgraded) gets the parsed, immutable manifest back from a small cache instead of checking
forty entries again on every message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache

from schemas import DecodeError

_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


class Manifest(Mapping[str, str]):
    """An immutable {object name: "major.minor"} map with its wire form."""

    __slots__ = ("_entries", "wire")

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = dict(sorted(entries.items()))
        self.wire = " ".join(f"{name}={version}" for name, version in self._entries.items())

    def __getitem__(self, name: str) -> str:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Manifest({self.wire!r})"

    @staticmethod
    def from_wire(text: object) -> Manifest:
        """Parse a manifest string; raises `DecodeError` for anything malformed."""
        if not isinstance(text, str):
            raise DecodeError(reason=f"a manifest is a string, not {type(text).__name__}")
        return _parse(text)


@lru_cache(maxsize=128)
def _parse(text: str) -> Manifest:
    entries: dict[str, str] = {}
    for entry in text.split():
        if not _ENTRY.fullmatch(entry):
            raise DecodeError(reason=f"malformed manifest entry {entry[:80]!r}")
        name, _, version = entry.partition("=")
        entries[name] = version
    return Manifest(entries)
