"""Volumes QEMU reaches over the network with its own client: nbd, iscsi, rbd.

QEMU's built-in initiators need no kernel module and no host-side login: the `<disk
type='network'>` names the server, and QEMU connects when the disk is attached.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from agent.virt.guest.elements import sub
from agent.virt.volumes.base import (
    disk_frame,
    finish,
    host_name,
    host_ports,
    malformed,
    port_number,
    require,
    require_str,
)
from schemas.objects.volume import VolumeConnection

ISCSI_DEFAULT_PORT = "3260"
# Both used with fullmatch: `$` would also accept a trailing newline.
_IQN = re.compile(r"iqn\.\d{4}-\d{2}\.\S+|eui\.[0-9A-Fa-f]{16}|naa\.[0-9A-Fa-f]{16,32}")
_PORTAL = re.compile(r"(\[[^\]]+\]|[^:\[\]]+)(?::(\d+))?")


class NbdVolumeDriver:
    """`<source protocol='nbd' name=<export>>` with exactly one server."""

    def disk_element(self, connection: VolumeConnection, target: str, bus: str) -> ET.Element:
        export = require_str(connection, "name")
        servers = host_ports(connection)
        if len(servers) != 1:
            raise malformed(connection, "hosts", f"has {len(servers)} servers; nbd takes one")
        disk, _driver = disk_frame(connection, "network")
        source = sub(disk, "source", protocol="nbd", name=export)
        host, port = servers[0]
        sub(source, "host", name=host, port=port)
        return finish(connection, disk, target, bus)


class IscsiVolumeDriver:
    """`<source protocol='iscsi' name='<iqn>/<lun>'>`, QEMU's libiscsi initiator, with CHAP
    credentials from a libvirt secret when `auth_method` is CHAP."""

    def __init__(self, initiator: str | None = None) -> None:
        self.initiator = initiator

    def disk_element(self, connection: VolumeConnection, target: str, bus: str) -> ET.Element:
        iqn = require_str(connection, "target_iqn")
        if not _IQN.fullmatch(iqn):
            raise malformed(connection, "target_iqn", f"{iqn!r} is not an iqn./eui./naa. name")
        lun = require(connection, "target_lun")
        assert isinstance(lun, int)
        if lun < 0:
            raise malformed(connection, "target_lun", f"{lun} is negative")
        host, port = self._portal(connection)
        disk, _driver = disk_frame(connection, "network")
        source = sub(disk, "source", protocol="iscsi", name=f"{iqn}/{lun}")
        sub(source, "host", name=host, port=port)
        if self.initiator:
            sub(sub(source, "initiator"), "iqn", name=self.initiator)
        auth_method = connection.data.auth_method
        if auth_method:
            if auth_method.upper() != "CHAP":
                raise malformed(connection, "auth_method", f"{auth_method!r} is not CHAP")
            user = require_str(connection, "auth_username")
            secret = require_str(connection, "secret_uuid")
            auth = sub(disk, "auth", username=user)
            sub(auth, "secret", type="iscsi", uuid=secret)
        return finish(connection, disk, target, bus)

    @staticmethod
    def _portal(connection: VolumeConnection) -> tuple[str, str]:
        portal = require_str(connection, "target_portal")
        match = _PORTAL.fullmatch(portal)
        if match is None:
            raise malformed(connection, "target_portal", f"{portal!r} is not host[:port]")
        host = host_name(connection, "target_portal", match.group(1))
        port = port_number(connection, "target_portal", match.group(2) or ISCSI_DEFAULT_PORT)
        return host, port


class RbdVolumeDriver:
    """`<source protocol='rbd' name='<pool>/<image>'>` with the Ceph monitors, and cephx
    credentials from a libvirt secret when `auth_enabled`."""

    def disk_element(self, connection: VolumeConnection, target: str, bus: str) -> ET.Element:
        name = require_str(connection, "name")
        pool, _, image = name.partition("/")
        if not pool or not image:
            raise malformed(connection, "name", f"{name!r} is not <pool>/<image>")
        monitors = host_ports(connection)
        disk, _driver = disk_frame(connection, "network", cache="writeback")
        if connection.data.auth_enabled:
            user = require_str(connection, "auth_username")
            secret = require_str(connection, "secret_uuid")
            auth = sub(disk, "auth", username=user)
            sub(auth, "secret", type="ceph", uuid=secret)
        source = sub(disk, "source", protocol="rbd", name=name)
        for host, port in monitors:
            sub(source, "host", name=host, port=port)
        return finish(connection, disk, target, bus)
