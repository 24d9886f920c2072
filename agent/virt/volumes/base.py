"""What every volume driver shares: the protocol, the `<disk>` frame, and field checks.

A volume driver turns a `VolumeConnection` into the `<disk>` element QEMU attaches, and
checks the connection first: a missing or garbled field is a `MalformedVolumeConnection`
naming the field, raised before anything reaches libvirt.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import xml.etree.ElementTree as ET
from typing import Protocol

from agent.virt.guest.elements import checked, element, sub
from agent.virt.guest.errors import MalformedVolumeConnection
from schemas.objects.enums import VolumeAccessMode
from schemas.objects.volume import VolumeConnection, VolumeConnectionData

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Used with fullmatch: `$` would also accept a trailing newline.
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*")
# Cinder's qos_specs keys QEMU understands, as nova passes them on (<iotune>).
IOTUNE_KEYS = (
    "total_bytes_sec",
    "read_bytes_sec",
    "write_bytes_sec",
    "total_iops_sec",
    "read_iops_sec",
    "write_iops_sec",
)


class VolumeDriver(Protocol):
    """Builds the `<disk>` of one kind of connection."""

    def disk_element(self, connection: VolumeConnection, target: str, bus: str) -> ET.Element:
        """The `<disk>` that attaches `connection` as `target` (vdb, sdc...) on `bus`."""
        ...


def malformed(connection: VolumeConnection, field: str, reason: str) -> MalformedVolumeConnection:
    return MalformedVolumeConnection(
        driver_volume_type=connection.driver_volume_type, field=f"data.{field}", reason=reason
    )


def require(connection: VolumeConnection, field: str) -> object:
    """The value of `data.<field>`; `MalformedVolumeConnection` if unset or None."""
    data: VolumeConnectionData = connection.data
    value = getattr(data, field) if data.obj_attr_is_set(field) else None
    if value is None or value in ("", []):
        raise malformed(connection, field, "is missing")
    return value


def require_str(connection: VolumeConnection, field: str) -> str:
    value = require(connection, field)
    assert isinstance(value, str)
    return checked(value, f"{connection.driver_volume_type} volume data.{field}")


def local_path(connection: VolumeConnection, field: str, prefix: str = "/") -> str:
    """An absolute, normalised path under `prefix` (no `..`, no doubled slashes)."""
    path = require_str(connection, field)
    if not path.startswith(prefix) or posixpath.normpath(path) != path:
        raise malformed(
            connection, field, f"must be a normalised absolute path under {prefix}: {path!r}"
        )
    return path


def host_name(connection: VolumeConnection, field: str, value: str) -> str:
    """A host name or an IP address (IPv6 without brackets)."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(value):
        raise malformed(connection, field, f"{value!r} is neither a host name nor an IP address")
    return value


def port_number(connection: VolumeConnection, field: str, value: str) -> str:
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) < 65536:
        raise malformed(connection, field, f"{value!r} is not a port number (1-65535)")
    return str(int(value))


def host_ports(connection: VolumeConnection) -> list[tuple[str, str]]:
    """The (host, port) pairs of `data.hosts` and `data.ports`, checked and paired."""
    hosts = require(connection, "hosts")
    ports = require(connection, "ports")
    assert isinstance(hosts, list) and isinstance(ports, list)
    if len(hosts) != len(ports):
        raise malformed(connection, "ports", f"has {len(ports)} entries for {len(hosts)} hosts")
    return [
        (host_name(connection, "hosts", h), port_number(connection, "ports", p))
        for h, p in zip(hosts, ports, strict=True)
    ]


def disk_frame(
    connection: VolumeConnection, disk_type: str, cache: str = "none"
) -> tuple[ET.Element, ET.Element]:
    """`<disk type=... device='disk'>` with its driver; returns (disk, driver). The caller
    adds `<source>`; `finish` adds target, serial, read-only and I/O limits."""
    if connection.data.encrypted:
        raise malformed(connection, "encrypted", "is set: encrypted volumes are not supported")
    disk = element("disk", type=disk_type, device="disk")
    driver = sub(disk, "driver", name="qemu", type="raw", cache=cache)
    if connection.data.discard:
        driver.set("discard", "unmap")
    return disk, driver


def finish(connection: VolumeConnection, disk: ET.Element, target: str, bus: str) -> ET.Element:
    """Target, serial, read-only flag and `<iotune>` from the connection's QoS specs."""
    sub(disk, "target", dev=target, bus=bus)
    if connection.serial:
        sub(disk, "serial", checked(connection.serial, "serial"))
    if connection.data.access_mode == VolumeAccessMode.READ_ONLY:
        sub(disk, "readonly")
    qos = connection.data.qos_specs or {}
    unknown = sorted(set(qos) - set(IOTUNE_KEYS))
    if unknown:
        raise malformed(connection, "qos_specs", f"has keys QEMU cannot limit: {unknown}")
    if qos:
        iotune = sub(disk, "iotune")
        for key in IOTUNE_KEYS:
            if key in qos:
                value = qos[key]
                if not (value.isascii() and value.isdigit()):
                    raise malformed(connection, "qos_specs", f"{key}={value!r} is not a count")
                sub(iotune, key, str(int(value)))
    return disk
