"""`BlockDeviceMapping` and its list: the disks of an instance and where they come from."""

from __future__ import annotations

from typing import ClassVar

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objectlist import ObjectList
from schemas.objects.enums import (
    BlockDeviceDestinationType,
    BlockDeviceSourceType,
    BlockDeviceType,
    DiskBus,
)
from schemas.objects.volume import VolumeConnection
from schemas.registry import default_registry


@default_registry.register
class BlockDeviceMapping(VersionedObject):
    """One disk of an instance: an image, a blank local disk, a snapshot or a volume."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"connection_info": [("1.0", "1.0")]}

    uuid: str = fields.UUID()
    instance_uuid: str = fields.UUID()
    source_type: str = fields.Enum(BlockDeviceSourceType)
    destination_type: str = fields.Enum(BlockDeviceDestinationType)
    device_type: str | None = fields.Enum(BlockDeviceType, nullable=True, default=None)
    disk_bus: str | None = fields.Enum(DiskBus, nullable=True, default=None)
    boot_index: int | None = fields.Integer(nullable=True, default=None)
    device_name: str | None = fields.String(nullable=True, default=None)
    guest_format: str | None = fields.String(nullable=True, default=None)
    delete_on_termination: bool = fields.Boolean(default=False)
    snapshot_id: str | None = fields.String(nullable=True, default=None)
    volume_id: str | None = fields.String(nullable=True, default=None)
    volume_size: int | None = fields.Integer(nullable=True, default=None)
    volume_type: str | None = fields.String(nullable=True, default=None)
    image_id: str | None = fields.String(nullable=True, default=None)
    no_device: bool = fields.Boolean(default=False)
    attachment_id: str | None = fields.UUID(nullable=True, default=None)
    connection_info: VolumeConnection | None = fields.Object(
        "VolumeConnection", nullable=True, default=None
    )
    tag: str | None = fields.String(nullable=True, default=None)

    @property
    def is_volume(self) -> bool:
        return self.destination_type == BlockDeviceDestinationType.VOLUME

    @property
    def is_root(self) -> bool:
        return self.boot_index == 0


@default_registry.register
class BlockDeviceMappingList(ObjectList[BlockDeviceMapping]):
    """The block device mappings of one instance."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"objects": [("1.0", "1.0")]}

    objects: list[BlockDeviceMapping] = fields.ListOfObjects("BlockDeviceMapping", default=[])

    def root_bdm(self) -> BlockDeviceMapping | None:
        """The mapping the guest boots from (boot_index 0), if any."""
        return next((bdm for bdm in self.objects if bdm.is_root), None)
