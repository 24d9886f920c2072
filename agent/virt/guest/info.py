"""Reading a guest: its devices in the domain XML, diagnostics, consoles, console log tail.

Blocking functions of a `Guest` (run them inside `Host.run`), and pure readers of the domain
XML, which is where libvirt says what a running guest really has (aliases, pty paths, VNC
ports).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt

from agent.virt.guest.config_devices import GUEST_AGENT_CHANNEL
from agent.virt.guest.domain import Guest
from agent.virt.libvirt_errors import is_lost
from agent.virt.power_state import power_state_of
from schemas.objects.enums import PowerState
from schemas.objects.virt import (
    CpuDiagnostics,
    Diagnostics,
    DiskDiagnostics,
    MemoryDiagnostics,
    NicDiagnostics,
)

KIB_PER_MIB = 1024


def find_disk(config: ET.Element, target: str) -> ET.Element | None:
    """The `<disk>` whose target is `target` (`vdb`)."""
    for disk in config.iterfind("devices/disk"):
        node = disk.find("target")
        if node is not None and node.get("dev") == target:
            return disk
    return None


def find_interface(config: ET.Element, mac: str) -> ET.Element | None:
    """The `<interface>` with MAC address `mac` (any case)."""
    for iface in config.iterfind("devices/interface"):
        node = iface.find("mac")
        if node is not None and (node.get("address") or "").lower() == mac.lower():
            return iface
    return None


def alias_of(device: ET.Element) -> str | None:
    node = device.find("alias")
    return None if node is None else node.get("name")


def disk_source_file(disk: ET.Element) -> str | None:
    node = disk.find("source")
    return None if node is None else node.get("file")


def console_log_path(config: ET.Element) -> str | None:
    node = config.find("devices/serial/log")
    return None if node is None else node.get("file")


def vnc_port(config: ET.Element) -> tuple[str | None, int | None]:
    """(listen address, port) of the VNC graphics; port None when there is none yet."""
    node = config.find("devices/graphics[@type='vnc']")
    if node is None:
        return None, None
    port = int(node.get("port", "-1"))
    return node.get("listen"), (port if port > 0 else None)


def spice_ports(config: ET.Element) -> tuple[str | None, int | None, int | None]:
    """(listen address, port, TLS port) of the SPICE graphics; a port is None when there is
    none (not yet allocated, or no TLS)."""
    node = config.find("devices/graphics[@type='spice']")
    if node is None:
        return None, None, None
    port, tls = int(node.get("port", "-1")), int(node.get("tlsPort", "-1"))
    return node.get("listen"), (port if port > 0 else None), (tls if tls > 0 else None)


def serial_pty(config: ET.Element) -> str | None:
    node = config.find("devices/serial[@type='pty']/source")
    return None if node is None else node.get("path")


def has_agent_channel(config: ET.Element) -> bool:
    return any(
        target.get("name") == GUEST_AGENT_CHANNEL
        for target in config.iterfind("devices/channel/target")
    )


def read_tail(path: Path, max_bytes: int) -> str:
    """The last `max_bytes` of `path` as text ('' if it does not exist yet; blocking)."""
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            size = log.tell()
            log.seek(max(0, size - max_bytes))
            data = log.read(max_bytes)
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")


def diagnostics(guest: Guest, hypervisor: str) -> Diagnostics:
    """`Diagnostics` of `guest` (blocking): CPU, NIC, disk and memory counters when running."""
    config = guest.config()
    state, max_mem, mem, vcpus, _cpu_time = guest.info()
    active = guest.is_active()
    disks = [t.get("dev", "") for t in config.iterfind("devices/disk/target")]
    nics = [
        (iface.find("mac"), iface.find("target")) for iface in config.iterfind("devices/interface")
    ]
    result = Diagnostics(
        state=(power_state_of(state) or PowerState.PENDING).value,
        driver="libvirt",
        hypervisor=hypervisor,
        hypervisor_os="linux",
        num_cpus=vcpus,
        num_nics=len(nics),
        num_disks=len(disks),
        memory_details=MemoryDiagnostics(maximum=max_mem // KIB_PER_MIB, used=mem // KIB_PER_MIB),
    )
    if not active:
        return result
    result.cpu_details = [
        CpuDiagnostics(id=index, time=time) for index, time in enumerate(guest.vcpu_times())
    ]
    details = []
    for dev in disks:
        rd_req, rd_bytes, wr_req, wr_bytes, errors = guest.block_stats(dev)
        details.append(
            DiskDiagnostics(
                read_bytes=rd_bytes,
                read_requests=rd_req,
                write_bytes=wr_bytes,
                write_requests=wr_req,
                errors_count=max(errors, 0),
            )
        )
    result.disk_details = details
    nic_details = []
    for mac, target in nics:
        if target is None or target.get("dev") is None:
            continue
        rx_b, rx_p, rx_e, rx_d, tx_b, tx_p, tx_e, tx_d = guest.interface_stats(
            target.get("dev", "")
        )
        nic_details.append(
            NicDiagnostics(
                mac_address=None if mac is None else mac.get("address"),
                rx_octets=rx_b,
                rx_packets=rx_p,
                rx_errors=rx_e,
                rx_drop=rx_d,
                tx_octets=tx_b,
                tx_packets=tx_p,
                tx_errors=tx_e,
                tx_drop=tx_d,
            )
        )
    result.nic_details = nic_details
    try:
        memory = guest.memory_stats()
    except libvirt.libvirtError as exc:
        # Memory figures are optional (a guest without a balloon has none); a lost
        # connection is not.
        if is_lost(exc):
            raise
        memory = {}
    if "actual" in memory and "unused" in memory:
        result.memory_details = MemoryDiagnostics(
            maximum=memory["actual"] // KIB_PER_MIB,
            used=(memory["actual"] - memory["unused"]) // KIB_PER_MIB,
        )
    return result
