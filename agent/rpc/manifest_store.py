"""`ManifestStore`: the callers' manifests an agent has read in full, kept across restarts.

A caller names its manifest by digest once an agent has answered it (docs/rpc.md, "Manifest
digests"). An agent that restarted, or was swapped in place for its next release, would not
know those digests and would refuse each caller's next call once (`UnknownManifestDigest`),
costing every caller a round trip. The store writes every manifest the agent reads in full to
a file, one wire string a line, and a starting agent reads them back before it serves, so its
callers' digests resolve at once. A caller it has never heard from sends its manifest in full
anyway; only a lost or damaged file brings the refusal back, and that refusal is harmless.

The file holds at most `max_entries` manifests (the newest); it is rewritten whole when it
has grown to twice that. Lines that are not a manifest are skipped (logged): the file is a
cache, never a reason not to start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from agent.rpc.manifest import Manifest
from schemas import DecodeError

log = logging.getLogger(__name__)


class ManifestStore:
    """Manifests by digest, remembered in the file at `path`. See the module docstring."""

    def __init__(self, path: Path, max_entries: int = 1024) -> None:
        if max_entries <= 0:
            raise ValueError(f"max_entries must be > 0, got {max_entries}")
        self.path = path
        self.max_entries = max_entries
        self._known: dict[str, str] = {}  # digest -> wire, oldest first
        self._lines = 0  # lines in the file, to know when to rewrite it
        self._lock = asyncio.Lock()

    def __contains__(self, digest: str) -> bool:
        return digest in self._known

    def __len__(self) -> int:
        return len(self._known)

    async def load(self) -> int:
        """Read the file (if any) and make its manifests known to this process: their digests
        resolve from now on. Returns how many were read. Runs in a thread (file I/O)."""
        lines = await asyncio.to_thread(self._read_lines)
        for number, line in enumerate(lines, 1):
            try:
                manifest = Manifest.from_wire(line)
            except DecodeError as exc:
                log.warning("%s:%d: not a manifest, skipped: %s", self.path, number, exc)
                continue
            self._keep(manifest)
        self._lines = len(lines)
        log.info("%d caller manifests read from %s", len(self._known), self.path)
        return len(self._known)

    async def remember(self, manifest: Manifest) -> None:
        """Keep `manifest` (read in full from a caller); a known one costs a dict lookup."""
        if manifest.digest in self._known or not manifest.wire:
            return
        async with self._lock:
            if manifest.digest in self._known:
                return
            self._keep(manifest)
            try:
                if self._lines + 1 >= 2 * self.max_entries:
                    await asyncio.to_thread(self._rewrite, list(self._known.values()))
                    self._lines = len(self._known)
                else:
                    await asyncio.to_thread(self._append, manifest.wire)
                    self._lines += 1
            except OSError as exc:
                # A cache that cannot be written only costs a refusal after the next restart.
                log.warning("caller manifest not kept in %s: %s", self.path, exc)

    def _keep(self, manifest: Manifest) -> None:
        self._known.pop(manifest.digest, None)
        self._known[manifest.digest] = manifest.wire
        while len(self._known) > self.max_entries:
            del self._known[next(iter(self._known))]

    def _read_lines(self) -> list[str]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning("caller manifests not read from %s: %s", self.path, exc)
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _append(self, wire: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(wire + "\n")

    def _rewrite(self, wires: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text("".join(wire + "\n" for wire in wires))
        os.replace(temporary, self.path)
