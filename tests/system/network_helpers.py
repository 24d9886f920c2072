"""What the host-networking system tests share: a Linux bridge with no uplink, and VIFs on it
with a static IPv4 address the guest configures itself (`virtactor.ip=`)."""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

from schemas.objects import VIF, ImageMeta, NetworkInfo
from schemas.objects.network import Network, Subnet
from tests.system.guest_image import GuestImage, ip_cmdline_arg

SUBNET = ipaddress.ip_network("10.213.0.0/24")
GATEWAY = ipaddress.ip_address("10.213.0.1")  # nobody answers there: no uplink


@contextmanager
def isolated_bridge() -> Iterator[str]:
    """A Linux bridge with no uplink (only the test's own guests on it), removed after."""
    name = f"vabr{uuidlib.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", "name", name, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", "dev", name, "up"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "link", "del", "dev", name], check=False)


def bridge_vifs(mac: str, ip: str, bridge: str) -> NetworkInfo:
    """One VIF on `bridge` with the fixed IP `ip` of `SUBNET` (its router and DNS server are
    addresses nothing on the bridge has: only DHCP options name them)."""
    subnet = Subnet(
        cidr=SUBNET,
        ips=[ipaddress.ip_address(ip)],
        gateway=GATEWAY,
        dns=[ipaddress.ip_address("10.213.0.53")],
    )
    network = Network(id=str(uuidlib.uuid4()), label="isolated", bridge=bridge, subnets=[subnet])
    vif = VIF(id=str(uuidlib.uuid4()), address=mac, type="bridge", network=network)
    return NetworkInfo(objects=[vif])


def with_address(image: ImageMeta, guest_image: GuestImage, ip: str) -> ImageMeta:
    """`image` whose guest gives eth0 `ip` in `SUBNET`."""
    flag = ip_cmdline_arg(f"{ip}/{SUBNET.prefixlen}")
    image.properties.os_command_line = f"{guest_image.cmdline} {flag}"
    return image


def nwfilters(uri: str) -> list[str]:
    """The names of the network filters defined on the host at `uri`."""
    conn = libvirt.open(uri)
    try:
        return sorted(f.name() for f in conn.listAllNWFilters(0))
    finally:
        conn.close()


def remove_unused_filters(uri: str) -> None:
    """Remove the `virtactor-` filters left on the host at `uri` that no guest uses (the
    shared base and provider filters an agent leaves for its next instance), so the host is
    as the next test module expects it; one in use stays."""
    conn = libvirt.open(uri)
    try:
        # Referencing filters first: a filter another one references cannot go.
        for _ in range(3):
            for flt in conn.listAllNWFilters(0):
                if flt.name().startswith("virtactor-"):
                    with contextlib.suppress(libvirt.libvirtError):
                        flt.undefine()
    finally:
        conn.close()
