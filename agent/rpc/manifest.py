"""`Manifest`: the object versions a peer understands, as it travels in every envelope.

On the wire a manifest is one string, `"Flavor=1.1 Instance=1.2 ..."`, not a map: a receiver
that has seen the same string before (the common case: a peer's manifest changes only when it
is upgraded) gets the parsed, immutable manifest back from a small cache instead of checking
forty entries again on every message.

A call may carry the manifest's digest instead (`"#"` and 16 hex digits of its BLAKE2b): ~20
bytes instead of ~500 in every request and reply once both sides have seen the full string
(see docs/rpc.md, "Manifest digests"). Every manifest built or parsed in this process is
remembered by digest in a bounded table (least recently used forgotten first); a digest not in
it raises `UnknownManifestDigest`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache

from schemas import DecodeError

_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
DIGEST_PREFIX = "#"
# Manifests by digest: a peer has one manifest per release, a process talks to a few releases.
_BY_DIGEST: dict[str, Manifest] = {}
_BY_DIGEST_MAX = 1024


class UnknownManifestDigest(DecodeError):
    """A message named its sender's manifest by a digest this process has not seen in full
    (it restarted, or the sender was upgraded): nothing was run; send it in full."""

    digest: str
    msg_fmt = "unknown manifest digest {digest}: send the manifest in full"


class Manifest(Mapping[str, str]):
    """An immutable {object name: "major.minor"} map with its wire form."""

    __slots__ = ("_entries", "digest", "wire")

    def __init__(self, entries: Mapping[str, str]) -> None:
        self._entries = dict(sorted(entries.items()))
        self.wire = " ".join(f"{name}={version}" for name, version in self._entries.items())
        digest = hashlib.blake2b(self.wire.encode(), digest_size=8).hexdigest()
        self.digest = DIGEST_PREFIX + digest
        _remember(self)

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
        """Parse a manifest string or resolve a digest; raises `DecodeError` for anything
        malformed and `UnknownManifestDigest` for a digest not seen in full."""
        if not isinstance(text, str):
            raise DecodeError(reason=f"a manifest is a string, not {type(text).__name__}")
        if text.startswith(DIGEST_PREFIX):
            known = _BY_DIGEST.pop(text, None)
            if known is None:
                raise UnknownManifestDigest(digest=text[:40])
            _BY_DIGEST[text] = known  # the most recently used is the last to be forgotten
            return known
        manifest = _parse(text)
        _remember(manifest)  # it may have been forgotten while its parse stayed cached
        return manifest


def forget_all() -> None:
    """Forget every manifest remembered by digest, as a new process starts: for tests and
    benchmarks of what an agent knows after a restart."""
    _BY_DIGEST.clear()
    _parse.cache_clear()


def _remember(manifest: Manifest) -> None:
    if manifest.digest in _BY_DIGEST:
        return
    if len(_BY_DIGEST) >= _BY_DIGEST_MAX:
        del _BY_DIGEST[next(iter(_BY_DIGEST))]  # the oldest
    _BY_DIGEST[manifest.digest] = manifest


@lru_cache(maxsize=128)
def _parse(text: str) -> Manifest:
    entries: dict[str, str] = {}
    for entry in text.split():
        if not _ENTRY.fullmatch(entry):
            raise DecodeError(reason=f"malformed manifest entry {entry[:80]!r}")
        name, _, version = entry.partition("=")
        entries[name] = version
    return Manifest(entries)
