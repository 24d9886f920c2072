"""Checking what a request names (domains, devices, images, paths, connections, ports) and
choosing guest device names: pure policy, before anything reaches the hypervisor.

A value that becomes a domain name, a file name or a guest device name is checked against a
strict pattern here, so a hostile name is refused with a typed error and never reaches
libvirt. (The Guest layer builds its XML with an XML library as well, so even a value that
passes cannot change the document's structure.)
"""

from __future__ import annotations

import re
import uuid as uuid_module
from typing import Final

from actors.instance.errors import InvalidConnectionInfo, InvalidInstanceArgument
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.enums import DiskBus, DriverVolumeType
from schemas.objects.image import ImageMeta
from schemas.objects.network import VIF
from schemas.objects.volume import VolumeConnection

# Domain names become file names under libvirt's and QEMU's directories and monitor socket
# paths (a UNIX socket path has 108 bytes), so: short, and no '/', spaces or markup.
DOMAIN_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# A guest disk: vda, sdb, hdc, xvdd, up to two letters (vdaa), with or without /dev/.
DEVICE: Final = re.compile(r"(?:/dev/)?((vd|sd|hd|xvd)[a-z]{1,2})")
# A host network device: IFNAMSIZ is 16 bytes with the terminating NUL.
HOST_IFNAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
MAX_GUEST_PATH: Final = 4096

BUS_PREFIX: Final[dict[str, str]] = {
    DiskBus.VIRTIO: "vd",
    DiskBus.SCSI: "sd",
    DiskBus.SATA: "sd",
    DiskBus.USB: "sd",
    DiskBus.IDE: "hd",
    DiskBus.XEN: "xvd",
}
DEFAULT_PREFIX: Final = "vd"
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def check_domain_name(action: str, uuid: str, name: str) -> str:
    """`name` if it may name a domain; `InvalidInstanceArgument` otherwise."""
    if DOMAIN_NAME.fullmatch(name) is None:
        raise InvalidInstanceArgument(
            action=action,
            uuid=uuid,
            argument="instance.name",
            reason=f"{name!r} is not 1-64 letters, digits, '.', '_' or '-'",
        )
    return name


def device_name(action: str, uuid: str, mountpoint: str) -> str:
    """The guest device of `mountpoint` ('/dev/vdb' or 'vdb' -> 'vdb')."""
    match = DEVICE.fullmatch(mountpoint)
    if match is None:
        raise InvalidInstanceArgument(
            action=action,
            uuid=uuid,
            argument="mountpoint",
            reason=f"{mountpoint!r} is not a guest disk such as /dev/vdb",
        )
    return match.group(1)


def check_image_id(action: str, uuid: str, image_id: str) -> str:
    """The canonical form of `image_id`, which must be a UUID (it becomes a file name)."""
    try:
        return str(uuid_module.UUID(image_id))
    except ValueError:
        raise InvalidInstanceArgument(
            action=action, uuid=uuid, argument="image_id", reason=f"{image_id!r} is not a UUID"
        ) from None


def check_guest_path(action: str, uuid: str, path: str) -> str:
    """`path` if it is an absolute path in the guest without NUL bytes or '..' parts."""
    problem = None
    if not path.startswith("/"):
        problem = "not an absolute path"
    elif "\0" in path:
        problem = "it contains a NUL byte"
    elif ".." in path.split("/"):
        problem = "it contains '..'"
    elif len(path) > MAX_GUEST_PATH:
        problem = f"longer than {MAX_GUEST_PATH} characters"
    if problem is not None:
        raise InvalidInstanceArgument(
            action=action, uuid=uuid, argument="path", reason=f"{path[:200]!r}: {problem}"
        )
    return path


def check_connection(uuid: str, connection: VolumeConnection) -> None:
    """Refuse a connection that lacks what its type needs or carries a malformed value."""
    kind = connection.driver_volume_type
    missing = connection.missing_data()
    if missing:
        raise InvalidConnectionInfo(
            uuid=uuid, volume_type=kind, reason=f"missing {', '.join(missing)}"
        )
    data = connection.data
    if kind in (DriverVolumeType.FILE, DriverVolumeType.BLOCK):
        path = data.device_path or ""
        if not path.startswith("/") or "\0" in path or ".." in path.split("/"):
            reason = f"device_path {path!r} is not a plain absolute path"
            raise InvalidConnectionInfo(uuid=uuid, volume_type=kind, reason=reason)
    if kind in (DriverVolumeType.NBD, DriverVolumeType.RBD):
        hosts, ports = data.hosts or [], data.ports or []
        if not hosts or len(hosts) != len(ports):
            reason = f"{len(hosts)} hosts for {len(ports)} ports"
            raise InvalidConnectionInfo(uuid=uuid, volume_type=kind, reason=reason)
        for port in ports:
            if not (port.isdigit() and 0 < int(port) < 65536):
                reason = f"port {port!r} is not a TCP port"
                raise InvalidConnectionInfo(uuid=uuid, volume_type=kind, reason=reason)
        if "\0" in (data.name or ""):
            reason = "the volume name contains a NUL byte"
            raise InvalidConnectionInfo(uuid=uuid, volume_type=kind, reason=reason)


def check_vif(action: str, uuid: str, vif: VIF) -> None:
    """Refuse a VIF whose host device name could not be a network device name."""
    if vif.devname is not None and HOST_IFNAME.fullmatch(vif.devname) is None:
        raise InvalidInstanceArgument(
            action=action,
            uuid=uuid,
            argument="vif.devname",
            reason=f"{vif.devname!r} is not a network device name (1-15 letters, digits, .-_)",
        )


# --- choosing device names -----------------------------------------------------------------


def bus_prefix(bus: str | None) -> str:
    return BUS_PREFIX.get(bus or DiskBus.VIRTIO, DEFAULT_PREFIX)


def default_root_device_name(
    image_meta: ImageMeta, root_bdm: BlockDeviceMapping | None = None
) -> str:
    """The root disk's device: the first disk of the root mapping's bus, else the image's."""
    bus = root_bdm.disk_bus if root_bdm is not None and root_bdm.disk_bus else None
    if bus is None and image_meta.obj_attr_is_set("properties"):
        bus = image_meta.properties.hw_disk_bus
    return f"/dev/{bus_prefix(bus)}a"


def next_device_name(prefix: str, used: set[str]) -> str:
    """The first free device of `prefix` ('vd' -> vda, vdb, ..., vdz, vdaa, ...)."""
    for name in _letter_names():
        if f"{prefix}{name}" not in used:
            return f"{prefix}{name}"
    raise ValueError(f"no free {prefix} device name: {len(used)} are in use")


def _letter_names() -> list[str]:
    return list(_LETTERS) + [a + b for a in _LETTERS for b in _LETTERS]


def default_device_names(
    root_device_name: str, mappings: BlockDeviceMappingList
) -> BlockDeviceMappingList:
    """`mappings` with a device name for each that has none: the root mapping (boot index 0)
    gets `root_device_name`, the others the next free name of their bus (or the root's),
    never the root's. Names already given are kept. A copy; `mappings` is unchanged."""
    result = mappings.obj_clone()
    root_match = DEVICE.fullmatch(root_device_name)
    root_prefix = root_match.group(2) if root_match else DEFAULT_PREFIX
    # The root disk holds its name whether or not a mapping in the list is the root.
    used = {root_match.group(1)} if root_match else set()
    for bdm in result:
        if bdm.device_name:
            match = DEVICE.fullmatch(bdm.device_name)
            used.add(match.group(1) if match else bdm.device_name)
    for bdm in result:
        if bdm.device_name:
            continue
        if bdm.is_root:
            bdm.device_name = root_device_name
            continue
        prefix = bus_prefix(bdm.disk_bus) if bdm.disk_bus else root_prefix
        name = next_device_name(prefix, used)
        used.add(name)
        bdm.device_name = f"/dev/{name}"
    return result
