"""Which disks a guest has, what the guest calls them, and where their files live.

`plan_disks` is pure: from the instance, its image and its block device mappings it decides
the root disk (an overlay on the cached image, or a volume to boot from, or none for a guest
that boots its kernel straight into an initramfs), the ephemeral and swap disks (blank local
qcow2 files) and the volumes, and names each (`vda`, `vdb`, ...) on the image's disk bus.
Names the mappings carry are kept; the rest are handed out in that order.

`InstancePaths` is the directory layout of one instance under `instances_path`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from actors.instance.names import BUS_PREFIX
from agent.virt.guest.elements import element, sub
from agent.virt.guest.errors import GuestConfigError
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.enums import BlockDeviceDestinationType, BlockDeviceSourceType, DiskBus
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.volume import VolumeConnection

PREFIX_BUS = {"vd": DiskBus.VIRTIO, "sd": DiskBus.SCSI, "hd": DiskBus.IDE, "xvd": DiskBus.XEN}
_DEVICE_NAME = re.compile(r"(?:/dev/)?(xvd|vd|sd|hd)([a-z]{1,2})")
SWAP_FORMAT = "swap"


SPAWNING_MARKER = ".spawning"


@dataclass(slots=True, frozen=True)
class InstancePaths:
    """The files of instance `uuid` under `instances_path`."""

    instances_path: str
    uuid: str

    @property
    def directory(self) -> Path:
        return Path(self.instances_path) / self.uuid

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def spawning(self) -> Path:
        """Present while a spawn builds the directory: a directory holding it and no domain
        is what an agent stopped mid-spawn left (see `run_spawn`)."""
        return self.directory / SPAWNING_MARKER

    def disk(self, name: str) -> Path:
        return self.directory / name


@dataclass(slots=True, frozen=True)
class LocalDisk:
    """A disk file in the instance directory: `file` (disk, disk.eph0, disk.swap), the
    guest's `target` on `bus`, and its size (None: the base image's own size)."""

    file: str
    target: str
    bus: str
    size_mib: int | None
    from_image: bool = False


@dataclass(slots=True, frozen=True)
class VolumeDisk:
    """A volume the guest gets at `target` on `bus`."""

    connection: VolumeConnection
    target: str
    bus: str
    volume_id: str | None = None


@dataclass(slots=True)
class DiskPlan:
    """Every disk of a guest in guest order (root first); `root_device_name` is `/dev/...`."""

    local: list[LocalDisk] = field(default_factory=list)
    volumes: list[VolumeDisk] = field(default_factory=list)
    root_device_name: str | None = None
    config_drive: tuple[str, str] | None = None  # (target, bus) of the config drive


def parse_device_name(name: str) -> tuple[str, str]:
    """(`vdb`, bus) of a device name like `/dev/vdb` or `vdb`; `GuestConfigError` if it is none."""
    match = _DEVICE_NAME.fullmatch(name)
    if match is None:
        raise GuestConfigError(
            uuid="-", reason=f"device name {name!r} is not /dev/<vd|sd|hd|xvd><letters>"
        )
    return match.group(1) + match.group(2), PREFIX_BUS[match.group(1)].value


def device_name(bus: str, index: int) -> str:
    """The `index`th (0-based) device name of `bus`: vda ... vdz, vdaa ..."""
    prefix = BUS_PREFIX.get(DiskBus(bus), "sd")
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return prefix + letters


def plan_disks(
    instance: Instance, image_meta: ImageMeta, bdms: BlockDeviceMappingList | None
) -> DiskPlan:
    """The disks of `instance`; see the module docstring. `GuestConfigError` for mappings it
    cannot honour (a volume without a connection, a local disk from a snapshot, ...)."""
    bus = image_meta.properties.hw_disk_bus or DiskBus.VIRTIO.value
    mappings = [] if bdms is None else [b for b in bdms.objects if not b.no_device]
    taken = {_named(instance, b)[0] for b in mappings if b.device_name}
    names = _Names(bus, taken)
    plan = DiskPlan()
    root = next((b for b in mappings if b.is_root), None)
    if root is not None and root.is_volume:
        plan.volumes.append(_volume(instance, root, names, instance.root_device_name))
        plan.root_device_name = f"/dev/{plan.volumes[0].target}"
    elif root is not None or instance.image_ref:
        if root is not None and root.source_type != BlockDeviceSourceType.IMAGE:
            raise GuestConfigError(
                uuid=instance.uuid,
                reason=f"root mapping {root.uuid} from {root.source_type!r} is not supported "
                "(an image or a volume)",
            )
        target, disk_bus = names.take(root.device_name if root else instance.root_device_name)
        size = instance.root_gb * 1024 or None
        plan.local.append(LocalDisk("disk", target, disk_bus, size, from_image=True))
        plan.root_device_name = f"/dev/{target}"
    ephemerals = [b for b in mappings if _is_blank_local(b) and b.guest_format != SWAP_FORMAT]
    swaps = [b for b in mappings if _is_blank_local(b) and b.guest_format == SWAP_FORMAT]
    for index, bdm in enumerate(ephemerals):
        target, disk_bus = names.take(bdm.device_name)
        size = (bdm.volume_size or instance.ephemeral_gb) * 1024
        plan.local.append(LocalDisk(f"disk.eph{index}", target, disk_bus, size))
    if not ephemerals and instance.ephemeral_gb > 0:
        target, disk_bus = names.take(None)
        plan.local.append(LocalDisk("disk.eph0", target, disk_bus, instance.ephemeral_gb * 1024))
    swap_mib = (swaps[0].volume_size or 0) * 1024 if swaps else instance.flavor.swap
    if swap_mib > 0:
        target, disk_bus = names.take(swaps[0].device_name if swaps else None)
        plan.local.append(LocalDisk("disk.swap", target, disk_bus, swap_mib))
    if instance.config_drive:
        plan.config_drive = names.take(None)
    for bdm in mappings:
        if bdm is root:
            continue
        if bdm.is_volume:
            plan.volumes.append(_volume(instance, bdm, names, None))
        elif not _is_blank_local(bdm):
            raise GuestConfigError(
                uuid=instance.uuid,
                reason=f"mapping {bdm.uuid} ({bdm.source_type} -> {bdm.destination_type}) "
                "is not supported",
            )
    return plan


def local_disk_element(
    path: str, target: str, bus: str, cachemode: str, fmt: str = "qcow2"
) -> ET.Element:
    """`<disk type='file'>` for a local image file."""
    disk = element("disk", type="file", device="disk")
    sub(disk, "driver", name="qemu", type=fmt, cache=cachemode)
    sub(disk, "source", file=path)
    sub(disk, "target", dev=target, bus=bus)
    return disk


def config_drive_element(path: str, target: str, bus: str) -> ET.Element:
    """`<disk>` for the config drive: a raw ISO image the guest may only read."""
    disk = element("disk", type="file", device="disk")
    sub(disk, "driver", name="qemu", type="raw")
    sub(disk, "source", file=path)
    sub(disk, "target", dev=target, bus=bus)
    sub(disk, "readonly")
    return disk


def _is_blank_local(bdm: BlockDeviceMapping) -> bool:
    return (
        bdm.destination_type == BlockDeviceDestinationType.LOCAL
        and bdm.source_type == BlockDeviceSourceType.BLANK
    )


def _named(instance: Instance, bdm: BlockDeviceMapping) -> tuple[str, str]:
    try:
        return parse_device_name(bdm.device_name or "")
    except GuestConfigError:
        raise GuestConfigError(
            uuid=instance.uuid,
            reason=f"mapping {bdm.uuid} device_name {bdm.device_name!r} is not "
            "/dev/<vd|sd|hd|xvd><letters>",
        ) from None


def _volume(
    instance: Instance, bdm: BlockDeviceMapping, names: _Names, fallback: str | None
) -> VolumeDisk:
    if bdm.connection_info is None:
        raise GuestConfigError(
            uuid=instance.uuid, reason=f"volume mapping {bdm.uuid} has no connection_info"
        )
    target, bus = names.take(bdm.device_name or fallback)
    return VolumeDisk(bdm.connection_info, target, bus, bdm.volume_id)


class _Names:
    """Hands out device names on `bus`, skipping those taken by explicit mappings."""

    def __init__(self, bus: str, taken: set[str]) -> None:
        self.bus = bus
        self.taken = taken
        self.next_index = 0

    def take(self, wanted: str | None) -> tuple[str, str]:
        if wanted:
            target, bus = parse_device_name(wanted)
            self.taken.add(target)
            # sd* is scsi, sata or usb: the image's bus says which when its prefix matches.
            if target.startswith(BUS_PREFIX.get(DiskBus(self.bus), "")):
                return target, self.bus
            return target, bus
        while True:
            target = device_name(self.bus, self.next_index)
            self.next_index += 1
            if target not in self.taken:
                self.taken.add(target)
                return target, self.bus
