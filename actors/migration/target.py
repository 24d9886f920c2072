"""Where a live migration goes, as the destination described it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class MigrationTarget:
    """The destination libvirtd's URI (for the source libvirtd, peer to peer), the address
    its QEMU listens on for the migration stream, and for a block migration the target
    devices whose disks are copied."""

    libvirt_uri: str
    address: str
    block_migration: bool = False
    disks: tuple[str, ...] = ()
    # Both hosts were seen to share the instances path (the storage probe), whatever
    # filesystem it is: libvirt, which trusts only the cluster filesystems it knows, is told
    # the disks need no copy.
    shared_path: bool = False
