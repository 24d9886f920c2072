"""Volume drivers: a `VolumeConnection` to the `<disk>` element that attaches it.

One driver per `driver_volume_type`: `file` and `block` (local paths), `nbd`, `iscsi` and
`rbd` (QEMU's own network clients). `volume_disk_element` picks the driver and checks the
connection; an unknown type or a malformed connection is a `MalformedVolumeConnection` naming
the field.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agent.virt.guest.errors import MalformedVolumeConnection
from agent.virt.volumes.base import VolumeDriver
from agent.virt.volumes.local import BlockVolumeDriver, FileVolumeDriver
from agent.virt.volumes.network import IscsiVolumeDriver, NbdVolumeDriver, RbdVolumeDriver
from schemas.objects.enums import DriverVolumeType
from schemas.objects.volume import VolumeConnection

__all__ = [
    "BlockVolumeDriver",
    "FileVolumeDriver",
    "IscsiVolumeDriver",
    "NbdVolumeDriver",
    "RbdVolumeDriver",
    "VolumeDriver",
    "driver_for",
    "volume_disk_element",
]


def driver_for(driver_volume_type: str, iscsi_initiator: str | None = None) -> VolumeDriver:
    """The driver of `driver_volume_type`; `MalformedVolumeConnection` for an unknown one."""
    if driver_volume_type == DriverVolumeType.FILE:
        return FileVolumeDriver()
    if driver_volume_type == DriverVolumeType.BLOCK:
        return BlockVolumeDriver()
    if driver_volume_type == DriverVolumeType.NBD:
        return NbdVolumeDriver()
    if driver_volume_type == DriverVolumeType.ISCSI:
        return IscsiVolumeDriver(iscsi_initiator)
    if driver_volume_type == DriverVolumeType.RBD:
        return RbdVolumeDriver()
    raise MalformedVolumeConnection(
        driver_volume_type=driver_volume_type,
        field="driver_volume_type",
        reason=f"is not one of {[t.value for t in DriverVolumeType]}",
    )


def volume_disk_element(
    connection: VolumeConnection, target: str, bus: str, *, iscsi_initiator: str | None = None
) -> ET.Element:
    """The `<disk>` attaching `connection` as `target` on `bus`, after checking it."""
    if not connection.obj_attr_is_set("data"):
        raise MalformedVolumeConnection(
            driver_volume_type=connection.driver_volume_type, field="data", reason="is missing"
        )
    driver = driver_for(connection.driver_volume_type, iscsi_initiator)
    return driver.disk_element(connection, target, bus)
