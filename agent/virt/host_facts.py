"""Host facts: what the hypervisor host has and uses, read from one libvirt connection.

`read_host_facts(conn, instances_path)` is blocking (many libvirt calls and a `statvfs`): run it
through the blocking executor, as `Host.get_host_facts()` does. The parsers below it are pure
functions of XML text, tested without libvirt.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import libvirt

from actors.tracker.pci import PciDevice
from agent.virt.errors import InstancesPathUnavailable, MalformedHostXML
from agent.virt.libvirt_errors import is_domain_gone, is_wrong_state

MIB = 1024 * 1024

PCI_TYPE = "type-PCI"
PF_TYPE = "type-PF"
VF_TYPE = "type-VF"


@dataclass(slots=True, frozen=True)
class CpuInfo:
    """The host CPU as the capabilities XML describes it (`/capabilities/host/cpu`)."""

    arch: str
    vendor: str
    model: str
    sockets: int
    dies: int
    cores: int
    threads: int
    features: tuple[str, ...]


@dataclass(slots=True, frozen=True)
class PciPool:
    """Interchangeable PCI devices: same vendor, product, NUMA node and type."""

    vendor_id: str
    product_id: str
    numa_node: int | None
    dev_type: str
    count: int


@dataclass(slots=True, frozen=True)
class DiskUsage:
    """The filesystem holding the instances path, in bytes.

    `available_least` is `free` minus what the local disks of all domains may still grow
    by (their virtual size minus what they occupy): the space left if every disk filled up.
    """

    total: int
    free: int
    used: int
    available_least: int


@dataclass(slots=True, frozen=True)
class GuestKind:
    """One kind of guest the host can run, in nova's canonical names (nova's
    `supported_instances` entry): architecture, hypervisor (domain) type, VM mode."""

    arch: str
    hv_type: str
    vm_mode: str


@dataclass(slots=True, frozen=True)
class HostFacts:
    """What the host has and uses. `host_uuid` is libvirt's host uuid (None if unreported);
    `running_vms` counts active domains and `vcpus_used` their vCPUs."""

    host_uuid: str | None
    hostname: str
    hypervisor_type: str
    hypervisor_version: int  # libvirt's packing: major * 1,000,000 + minor * 1,000 + micro
    libvirt_version: int
    vcpus: int
    vcpus_used: int
    running_vms: int
    memory_mb: int
    memory_mb_used: int
    disk: DiskUsage
    cpu: CpuInfo
    pci_devices: tuple[PciDevice, ...]
    pci_pools: tuple[PciPool, ...]
    guest_kinds: tuple[GuestKind, ...]


def _parse(xml: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise MalformedHostXML(what=what, reason=str(exc)) from exc


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text, 0) if text is not None else default
    except ValueError:
        return default


def parse_host_uuid(capabilities_xml: str) -> str | None:
    """libvirt's host uuid (`/capabilities/host/uuid`), None when the driver reports none."""
    text = _parse(capabilities_xml, "capabilities").findtext("host/uuid")
    return text.strip() if text and text.strip() else None


def parse_cpu_info(capabilities_xml: str, fallback_topology: tuple[int, int, int]) -> CpuInfo:
    """The host CPU of a capabilities document.

    A driver that reports no `<topology>` (libvirt's test driver) gets `fallback_topology`,
    (sockets, cores, threads) from `virNodeGetInfo`.
    """
    cpu = _parse(capabilities_xml, "capabilities").find("host/cpu")
    if cpu is None:
        raise MalformedHostXML(what="capabilities", reason="no <host><cpu> element")
    topology = cpu.find("topology")
    sockets, cores, threads = fallback_topology
    dies = 1
    if topology is not None:
        sockets = _int(topology.get("sockets"), sockets)
        dies = _int(topology.get("dies"), 1)
        cores = _int(topology.get("cores"), cores)
        threads = _int(topology.get("threads"), threads)
    features = [f.get("name", "") for f in cpu.findall("feature")]
    if not features:
        # Older or test drivers list features as empty elements: <features><pae/></features>.
        features = [f.tag for f in cpu.findall("features/*")]
    return CpuInfo(
        arch=cpu.findtext("arch", ""),
        vendor=cpu.findtext("vendor", ""),
        model=cpu.findtext("model", ""),
        sockets=sockets,
        dies=dies,
        cores=cores,
        threads=threads,
        features=tuple(sorted(name for name in features if name)),
    )


# nova's Architecture / VMMode canonicalize(): libvirt's spellings to the names nova filters on.
_ARCH_ALIASES = {"i386": "i686", "i486": "i686", "i586": "i686", "x86_32": "i686"}
_ARCH_ALIASES |= {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}
_VM_MODE_ALIASES = {"hv": "hvm", "baremetal": "hvm", "pv": "xen", "xapi": "xen"}


def parse_guest_kinds(capabilities_xml: str) -> tuple[GuestKind, ...]:
    """Every (arch, domain type, OS type) a capabilities document's `<guest>` elements offer,
    as nova's libvirt driver lists them, without repeats, in document order."""
    kinds: dict[GuestKind, None] = {}
    for guest in _parse(capabilities_xml, "capabilities").findall("guest"):
        os_type = (guest.findtext("os_type") or "").strip().lower()
        arch = guest.find("arch")
        if not os_type or arch is None or not arch.get("name"):
            continue
        name = arch.get("name", "").lower()
        for domain in arch.findall("domain"):
            hv_type = domain.get("type", "").lower()
            if hv_type:
                kind = GuestKind(
                    arch=_ARCH_ALIASES.get(name, name),
                    hv_type=hv_type,
                    vm_mode=_VM_MODE_ALIASES.get(os_type, os_type),
                )
                kinds[kind] = None
    return tuple(kinds)


def _pci_address(element: ET.Element) -> str:
    """dddd:bb:ss.f from either child elements (<domain>0</domain>) or attributes."""

    def part(name: str) -> int:
        value = element.get(name)
        return _int(value if value is not None else element.findtext(name))

    return f"{part('domain'):04x}:{part('bus'):02x}:{part('slot'):02x}.{part('function'):x}"


def _hex_id(element: ET.Element | None) -> str:
    raw = "" if element is None else element.get("id", "")
    return raw.lower().removeprefix("0x").rjust(4, "0")


def parse_pci_device(device_xml: str) -> PciDevice | None:
    """The PCI device a node-device document describes, or None if it is not a PCI device."""
    device = _parse(device_xml, "node device")
    capability = device.find("capability[@type='pci']")
    if capability is None:
        return None
    dev_type, parent = PCI_TYPE, None
    for sub in capability.findall("capability"):
        if sub.get("type") == "virt_functions":
            dev_type = PF_TYPE
        elif sub.get("type") == "phys_function":
            dev_type = VF_TYPE
            address = sub.find("address")
            parent = _pci_address(address) if address is not None else None
    numa = capability.find("numa")
    return PciDevice(
        address=_pci_address(capability),
        vendor_id=_hex_id(capability.find("vendor")),
        product_id=_hex_id(capability.find("product")),
        dev_type=dev_type,
        numa_node=_int(numa.get("node")) if numa is not None else None,
        parent_address=parent,
    )


def _pool_order(pool: PciPool) -> tuple[str, str, int, str]:
    numa = -1 if pool.numa_node is None else pool.numa_node
    return (pool.vendor_id, pool.product_id, numa, pool.dev_type)


def group_pci_pools(devices: Iterable[PciDevice]) -> tuple[PciPool, ...]:
    """Devices grouped into pools of interchangeable ones, in a stable order."""
    counts = Counter((d.vendor_id, d.product_id, d.numa_node, d.dev_type) for d in devices)
    pools = [PciPool(*key, count) for key, count in counts.items()]
    pools.sort(key=_pool_order)
    return tuple(pools)


def local_disk_paths(domain_xml: str, instances_path: str) -> list[str]:
    """The file-backed disks of a domain that live under `instances_path`."""
    root = os.path.join(os.path.abspath(instances_path), "")
    paths = []
    for disk in _parse(domain_xml, "domain").findall("devices/disk[@type='file']"):
        source = disk.find("source")
        path = source.get("file") if source is not None else None
        if path and os.path.abspath(path).startswith(root):
            paths.append(path)
    return paths


def measure_disk(instances_path: str, over_commit: int) -> DiskUsage:
    """`statvfs` of the instances path's filesystem (blocking), less `over_commit` bytes."""
    try:
        st = os.statvfs(instances_path)
    except OSError as exc:
        raise InstancesPathUnavailable(path=instances_path, reason=exc.strerror) from exc
    free = st.f_bavail * st.f_frsize
    return DiskUsage(
        total=st.f_blocks * st.f_frsize,
        free=free,
        used=(st.f_blocks - st.f_bfree) * st.f_frsize,
        available_least=free - over_commit,
    )


def _domain_gone(exc: libvirt.libvirtError) -> bool:
    # A domain listed a moment ago may be undefined or stop before we look at it.
    return is_domain_gone(exc) or is_wrong_state(exc)


def _disk_over_commit(conn: libvirt.virConnect, instances_path: str) -> int:
    total = 0
    for dom in conn.listAllDomains(0):
        try:
            for path in local_disk_paths(dom.XMLDesc(0), instances_path):
                capacity, allocation, _physical = dom.blockInfo(path)
                total += max(0, capacity - allocation)
        except libvirt.libvirtError as exc:
            if not _domain_gone(exc):
                raise
    return total


def _active_domains(conn: libvirt.virConnect) -> tuple[int, int]:
    """(running domains, their vCPUs)."""
    running = vcpus = 0
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        try:
            vcpus += dom.info()[3]
        except libvirt.libvirtError as exc:
            if not _domain_gone(exc):
                raise
            continue
        running += 1
    return running, vcpus


def read_pci_devices(conn: libvirt.virConnect) -> tuple[PciDevice, ...]:
    """Every PCI device the node-device API lists (blocking)."""
    flags = libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
    devices = (parse_pci_device(dev.XMLDesc(0)) for dev in conn.listAllDevices(flags))
    return tuple(sorted((d for d in devices if d is not None), key=lambda d: d.address))


def read_host_facts(conn: libvirt.virConnect, instances_path: str) -> HostFacts:
    """Everything `HostFacts` holds, read from `conn` and the instances path (blocking).

    Memory used is `virNodeGetInfo`'s total less `virNodeGetFreeMemory`, both over the NUMA
    cells libvirt sees, so the two numbers always come from one source.
    """
    _arch, memory_mb, cpus, _mhz, _nodes, sockets, cores, threads = conn.getInfo()
    free_mb = conn.getFreeMemory() // MIB
    pci_devices = read_pci_devices(conn)
    capabilities = conn.getCapabilities()
    running, vcpus_used = _active_domains(conn)
    return HostFacts(
        host_uuid=parse_host_uuid(capabilities),
        hostname=conn.getHostname(),
        hypervisor_type=conn.getType(),
        hypervisor_version=conn.getVersion(),
        libvirt_version=conn.getLibVersion(),
        vcpus=cpus,
        vcpus_used=vcpus_used,
        running_vms=running,
        memory_mb=memory_mb,
        memory_mb_used=max(0, memory_mb - free_mb),
        disk=measure_disk(instances_path, _disk_over_commit(conn, instances_path)),
        cpu=parse_cpu_info(capabilities, (sockets, cores, threads)),
        pci_devices=pci_devices,
        pci_pools=group_pci_pools(pci_devices),
        guest_kinds=parse_guest_kinds(capabilities),
    )


def read_uptime(path: str = "/proc/uptime") -> float:
    """Seconds since this machine booted (blocking: reads `path`)."""
    with open(path) as uptime:
        return float(uptime.read().split()[0])
