"""`ImageMeta` and its typed `ImageMetaProps`: what the guest image asks of the hypervisor."""

from __future__ import annotations

from typing import Any, ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objects.enums import DiskBus, FirmwareType, SCSIModel, VideoModel, VIFModel
from schemas.registry import default_registry
from schemas.versions import Version


@default_registry.register
class ImageMetaProps(VersionedObject):
    """The image properties the libvirt driver reads (nova's `ImageMetaProps` subset)."""

    # 1.0: Initial version
    # 1.1: Added kernel_id, ramdisk_id, os_command_line (direct kernel boot)
    VERSION = "1.1"
    __slots__ = ()

    hw_architecture: str | None = fields.String(nullable=True, default=None)
    hw_boot_menu: bool | None = fields.Boolean(nullable=True, default=None)
    hw_cdrom_bus: str | None = fields.Enum(DiskBus, nullable=True, default=None)
    hw_disk_bus: str | None = fields.Enum(DiskBus, nullable=True, default=None)
    hw_firmware_type: str | None = fields.Enum(FirmwareType, nullable=True, default=None)
    hw_machine_type: str | None = fields.String(nullable=True, default=None)
    hw_pointer_model: str | None = fields.String(nullable=True, default=None)
    hw_qemu_guest_agent: bool = fields.Boolean(default=False)
    hw_rng_model: str | None = fields.String(nullable=True, default=None)
    hw_scsi_model: str | None = fields.Enum(SCSIModel, nullable=True, default=None)
    hw_video_model: str | None = fields.Enum(VideoModel, nullable=True, default=None)
    hw_vif_model: str | None = fields.Enum(VIFModel, nullable=True, default=None)
    hw_vif_multiqueue_enabled: bool = fields.Boolean(default=False)
    img_hv_type: str | None = fields.String(nullable=True, default=None)
    os_distro: str | None = fields.String(nullable=True, default=None)
    os_type: str | None = fields.String(nullable=True, default=None)
    # Direct kernel boot: images (by id) holding the kernel and the initial ramdisk, and the
    # kernel command line.
    kernel_id: str | None = fields.String(nullable=True, default=None)
    ramdisk_id: str | None = fields.String(nullable=True, default=None)
    os_command_line: str | None = fields.String(nullable=True, default=None)

    def make_compatible(self, primitive: dict[str, Any], target_version: Version) -> None:
        if target_version < (1, 1):
            for name in ("kernel_id", "ramdisk_id", "os_command_line"):
                primitive.pop(name, None)


@default_registry.register
class ImageMeta(VersionedObject):
    """A Glance image's metadata as the driver needs it to build a guest."""

    # 1.0: Initial version
    # 1.1: ImageMetaProps 1.1
    VERSION = "1.1"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"properties": [("1.0", "1.0"), ("1.1", "1.1")]}

    id: str | None = fields.UUID(nullable=True, default=None)
    name: str | None = fields.String(nullable=True, default=None)
    checksum: str | None = fields.String(nullable=True, default=None)
    container_format: str | None = fields.String(nullable=True, default=None)
    disk_format: str | None = fields.String(nullable=True, default=None)
    min_disk: int = fields.Integer(default=0)
    min_ram: int = fields.Integer(default=0)
    size: int | None = fields.Integer(nullable=True, default=None)
    status: str | None = fields.String(nullable=True, default=None)
    owner: str | None = fields.String(nullable=True, default=None)
    properties: ImageMetaProps = fields.Object("ImageMetaProps")
