"""Volumes reachable as a local path: `file` (an image file) and `block` (a block device)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from agent.virt.guest.elements import sub
from agent.virt.volumes.base import disk_frame, finish, local_path
from schemas.objects.volume import VolumeConnection


class FileVolumeDriver:
    """`<disk type='file'>` on `data.device_path`, a raw image file."""

    def disk_element(self, connection: VolumeConnection, target: str, bus: str) -> ET.Element:
        path = local_path(connection, "device_path")
        disk, _driver = disk_frame(connection, "file")
        sub(disk, "source", file=path)
        return finish(connection, disk, target, bus)


class BlockVolumeDriver:
    """`<disk type='block'>` on `data.device_path`, a block device under /dev."""

    def disk_element(self, connection: VolumeConnection, target: str, bus: str) -> ET.Element:
        path = local_path(connection, "device_path", prefix="/dev/")
        disk, _driver = disk_frame(connection, "block")
        sub(disk, "source", dev=path)
        return finish(connection, disk, target, bus)
