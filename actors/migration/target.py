"""Where a live migration goes, as the destination described it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class PathMap:
    """Where the source keeps the instance's files and cached images, and where the
    destination does."""

    source_dir: str
    dest_dir: str
    source_cache: str
    dest_cache: str

    def moved(self, path: str) -> str:
        for old, new in ((self.source_dir, self.dest_dir), (self.source_cache, self.dest_cache)):
            if old != new and under(path, old):
                return new + path[len(old) :]
        return path


def under(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or inside it."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@dataclass(slots=True, frozen=True)
class MigrationTarget:
    """The destination libvirtd's URI (for the source libvirtd, peer to peer), the address
    the migration stream is sent to (and the one its QEMU listens on, when they differ), and
    for a block migration the target devices whose disks are copied."""

    libvirt_uri: str
    address: str
    block_migration: bool = False
    disks: tuple[str, ...] = ()
    # Both hosts were seen to share the instances path (the storage probe), whatever
    # filesystem it is: libvirt, which trusts only the cluster filesystems it knows, is told
    # the disks need no copy.
    shared_path: bool = False
    # Set when the destination keeps the instance's files or cached images under other paths.
    paths: PathMap | None = None
    listen_address: str = ""  # empty: `address`
