"""This host's address when the configuration names none, as nova's `my_ip` finds it.

The address of the interface that carries the default route, found by "connecting" a UDP
socket to a public address: connect() on a datagram socket only picks a route and a source
address, nothing is sent. Without a default route, the first non-loopback IPv4 address of an
interface; without one of those, 127.0.0.1. Blocking only for a few system calls:
called once, while the configuration is read.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable

# Public resolvers' addresses, used only to select a route (never contacted).
ROUTE_PROBES = ((socket.AF_INET, "8.8.8.8"), (socket.AF_INET6, "2001:4860:4860::8888"))
LOOPBACK = "127.0.0.1"
_SIOCGIFADDR = 0x8915  # <linux/sockios.h>: an interface's IPv4 address


def default_host_ip() -> str:
    """The address other hosts most likely reach this one on (see the module docstring)."""
    return choose_host_ip(_route_source_addresses(), _interface_addresses())


def choose_host_ip(route_sources: Iterable[str], interface_addresses: Iterable[str]) -> str:
    """The first default-route source address, else the first interface address that is not
    loopback or link-local, else 127.0.0.1."""
    for address in (*route_sources, *interface_addresses):
        ip = ipaddress.ip_address(address)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            return str(ip)
    return LOOPBACK


def _route_source_addresses() -> list[str]:
    found = []
    for family, probe in ROUTE_PROBES:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.connect((probe, 80))
            except OSError:
                continue  # no route in this family
            found.append(str(sock.getsockname()[0]))
    return found


def _interface_addresses() -> list[str]:
    """The IPv4 address of each interface that has one, in interface index order (Linux)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address, or the interface went away
            found.append(socket.inet_ntoa(reply[20:24]))
    return found
