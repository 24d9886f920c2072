"""`LiveMigrateData` (the libvirt flavour): what the two hosts of a live migration agree on.

The destination fills it in `check_can_live_migrate_destination` and `pre_live_migration`
(listen addresses, what storage is shared); the source reads it to build the migration.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objects.migration import Migration
from schemas.objects.volume import VolumeConnection
from schemas.registry import default_registry
from schemas.versions import Version


@default_registry.register
class LiveMigrateBDMInfo(VersionedObject):
    """One volume as the destination will attach it (its own connection info)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"connection_info": [("1.0", "1.0")]}

    serial: str = fields.String()  # the volume id
    bus: str = fields.String()
    dev: str = fields.String()  # target device name, "vdb"
    type: str = fields.String()  # "disk", "cdrom", ...
    format: str | None = fields.String(nullable=True, default=None)
    boot_index: int | None = fields.Integer(nullable=True, default=None)
    connection_info: VolumeConnection | None = fields.Object(
        "VolumeConnection", nullable=True, default=None
    )
    encryption_secret_uuid: str | None = fields.UUID(nullable=True, default=None)


@default_registry.register
class LiveMigrateDisk(VersionedObject):
    """One local disk file a block migration copies: the destination makes an empty file of
    the same shape first (an overlay on the same base image, from its own image cache)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    file: str = fields.String()  # its name in the instance directory ("disk", "disk.eph0")
    target: str = fields.String()  # the guest's device ("vda")
    format: str = fields.String()  # "qcow2" or "raw"
    virtual_size: int = fields.Integer()  # bytes
    backing_image: str | None = fields.String(nullable=True, default=None)  # cached image id


@default_registry.register
class LiveMigrateData(VersionedObject):
    """Live-migration parameters exchanged by source and destination (libvirt driver)."""

    # 1.0: Initial version
    # 1.1: Migration 1.1
    # 1.2: Migration 1.2
    # 1.3: Added dest_libvirt_uri
    # 1.4: Added local_disks, boot_images, dest_instance_dir, dest_image_cache_dir,
    #      dest_listen_addr, config_drive
    VERSION = "1.4"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {
        "migration": [("1.0", "1.0"), ("1.1", "1.1"), ("1.2", "1.2"), ("1.3", "1.2")],
        "bdms": [("1.0", "1.0")],
        "local_disks": [("1.4", "1.0")],
    }

    migration: Migration | None = fields.Object("Migration", nullable=True, default=None)
    is_volume_backed: bool = fields.Boolean(default=False)
    block_migration: bool = fields.Boolean(default=False)
    disk_over_commit: bool | None = fields.Boolean(nullable=True, default=None)
    disk_available_mb: int | None = fields.Integer(nullable=True, default=None)
    filename: str | None = fields.String(nullable=True, default=None)  # shared-storage probe
    image_type: str | None = fields.String(nullable=True, default=None)
    is_shared_instance_path: bool = fields.Boolean(default=False)
    is_shared_block_storage: bool = fields.Boolean(default=False)
    instance_relative_path: str | None = fields.String(nullable=True, default=None)
    graphics_listen_addr_vnc: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
        fields.IPAddress(nullable=True, default=None)
    )
    graphics_listen_addr_spice: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
        fields.IPAddress(nullable=True, default=None)
    )
    serial_listen_addr: str | None = fields.String(nullable=True, default=None)
    serial_listen_ports: list[int] = fields.List(fields.Integer(), default=[])
    target_connect_addr: str | None = fields.String(nullable=True, default=None)
    # Where the destination's QEMU listens, when the source sends elsewhere (a proxy).
    dest_listen_addr: str | None = fields.String(nullable=True, default=None)
    # The destination libvirtd as the source's libvirtd reaches it (peer to peer).
    dest_libvirt_uri: str | None = fields.String(nullable=True, default=None)
    # A block migration's local disks and the cached images they and the kernel boot from,
    # read on the source; where the destination keeps the instance's files and its images
    # (the source rewrites the paths of the domain it sends when they differ from its own).
    local_disks: list[LiveMigrateDisk] = fields.ListOfObjects("LiveMigrateDisk", default=[])
    boot_images: list[str] = fields.List(fields.String(), default=[])
    dest_instance_dir: str | None = fields.String(nullable=True, default=None)
    dest_image_cache_dir: str | None = fields.String(nullable=True, default=None)
    # A block migration's config drive, base64 (libvirt copies no read-only disk).
    config_drive: str | None = fields.String(nullable=True, default=None)
    supported_perf_events: list[str] = fields.List(fields.String(), default=[])
    bdms: list[LiveMigrateBDMInfo] = fields.ListOfObjects("LiveMigrateBDMInfo", default=[])
    old_vol_attachment_ids: dict[str, str] = fields.Dict(fields.String(), default={})
    wait_for_vif_plugged: bool = fields.Boolean(default=False)
    dst_wants_file_backed_memory: bool = fields.Boolean(default=False)
    file_backed_memory_discard: bool = fields.Boolean(default=False)

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 4):
            for name in (
                "local_disks",
                "boot_images",
                "dest_instance_dir",
                "dest_image_cache_dir",
                "dest_listen_addr",
                "config_drive",
            ):
                primitive.pop(name, None)
        if target_version < (1, 3):
            primitive.pop("dest_libvirt_uri", None)
