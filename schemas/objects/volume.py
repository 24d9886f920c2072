"""Volume attachment objects: the connector (our side) and the connection (the storage's)."""

from __future__ import annotations

import ipaddress
from typing import ClassVar, Final

from schemas import fields
from schemas.base import Relationships, VersionedObject
from schemas.objects.enums import DriverVolumeType, VolumeAccessMode
from schemas.registry import default_registry

# What each connection type cannot do without (nova's libvirt volume drivers read these).
REQUIRED_DATA: Final[dict[str, tuple[str, ...]]] = {
    DriverVolumeType.FILE: ("device_path",),
    DriverVolumeType.BLOCK: ("device_path",),
    DriverVolumeType.NBD: ("name", "hosts", "ports"),
    DriverVolumeType.ISCSI: ("target_portal", "target_iqn", "target_lun"),
    DriverVolumeType.RBD: ("name", "hosts", "ports"),
}


@default_registry.register
class VolumeConnector(VersionedObject):
    """This host as a storage initiator (what Cinder's initialize_connection is given)."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    host: str = fields.String()
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = fields.IPAddress(
        nullable=True, default=None
    )
    initiator: str | None = fields.String(nullable=True, default=None)
    wwpns: list[str] | None = fields.List(fields.String(), nullable=True, default=None)
    wwnns: list[str] | None = fields.List(fields.String(), nullable=True, default=None)
    multipath: bool = fields.Boolean(default=False)
    enforce_multipath: bool = fields.Boolean(default=False)
    platform: str | None = fields.String(nullable=True, default=None)
    os_type: str | None = fields.String(nullable=True, default=None)
    do_local_attach: bool = fields.Boolean(default=False)


@default_registry.register
class VolumeConnectionData(VersionedObject):
    """The `data` of a connection: the union of what file/block/nbd/iscsi/rbd carry."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    volume_id: str | None = fields.String(nullable=True, default=None)
    access_mode: str = fields.Enum(VolumeAccessMode, default=VolumeAccessMode.READ_WRITE)
    encrypted: bool = fields.Boolean(default=False)
    discard: bool = fields.Boolean(default=False)
    # file, block
    device_path: str | None = fields.String(nullable=True, default=None)
    # iscsi
    target_portal: str | None = fields.String(nullable=True, default=None)
    target_iqn: str | None = fields.String(nullable=True, default=None)
    target_lun: int | None = fields.Integer(nullable=True, default=None)
    target_portals: list[str] | None = fields.List(fields.String(), nullable=True, default=None)
    target_iqns: list[str] | None = fields.List(fields.String(), nullable=True, default=None)
    target_luns: list[int] | None = fields.List(fields.Integer(), nullable=True, default=None)
    auth_method: str | None = fields.String(nullable=True, default=None)
    # rbd, nbd (network disks)
    name: str | None = fields.String(nullable=True, default=None)
    hosts: list[str] | None = fields.List(fields.String(), nullable=True, default=None)
    ports: list[str] | None = fields.List(fields.String(), nullable=True, default=None)
    cluster_name: str | None = fields.String(nullable=True, default=None)
    auth_enabled: bool = fields.Boolean(default=False)
    auth_username: str | None = fields.String(nullable=True, default=None)
    secret_type: str | None = fields.String(nullable=True, default=None)
    secret_uuid: str | None = fields.UUID(nullable=True, default=None)
    qos_specs: dict[str, str] | None = fields.Dict(fields.String(), nullable=True, default=None)


@default_registry.register
class VolumeConnection(VersionedObject):
    """How to reach an attached volume: `driver_volume_type` plus its `data`."""

    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()
    OBJ_RELATIONSHIPS: ClassVar[Relationships] = {"data": [("1.0", "1.0")]}

    driver_volume_type: str = fields.Enum(DriverVolumeType)
    data: VolumeConnectionData = fields.Object("VolumeConnectionData")
    serial: str | None = fields.String(nullable=True, default=None)

    def missing_data(self) -> list[str]:
        """The data fields this connection type needs that are unset or None."""
        data = self.data
        return [
            name
            for name in REQUIRED_DATA[self.driver_volume_type]
            if not data.obj_attr_is_set(name) or getattr(data, name) is None
        ]
