"""What each domain of the hypervisor holds, for the resource tracker's audit.

`read_domain_usage(conn)` is blocking (one `XMLDesc` per domain): run it through the
Host. A domain this agent built carries its instance's record in its <metadata>; its sizes
are the record's flavor, as claimed. Any other domain is counted by its XML (vCPUs and
memory; its disk is unknown and not counted). PCI devices are the domain's `<hostdev>`s.
"""

from __future__ import annotations

import base64
import binascii
import logging
import xml.etree.ElementTree as ET

import libvirt

from actors.instance.recovery import RecoveryDataInvalid, decode_recovery
from actors.tracker import DomainUsage, Resources
from agent.virt.errors import MalformedHostXML
from agent.virt.guest.metadata import RECOVERY_NS
from agent.virt.libvirt_errors import is_domain_gone
from schemas.objects.instance import Instance

log = logging.getLogger(__name__)

_KIB_PER = {"b": 1 / 1024, "bytes": 1 / 1024, "k": 1, "kib": 1, "kb": 1000 / 1024}
_KIB_PER |= {"m": 1024, "mib": 1024, "mb": 1000**2 / 1024, "g": 1024**2, "gib": 1024**2}
_KIB_PER |= {"gb": 1000**3 / 1024, "t": 1024**3, "tib": 1024**3, "tb": 1000**4 / 1024}


def _memory_mb(root: ET.Element) -> int:
    memory = root.find("memory")
    if memory is None or not (memory.text or "").strip():
        return 0
    unit = memory.get("unit", "KiB").lower()
    if unit not in _KIB_PER:
        reason = f"memory unit {memory.get('unit')!r} is not one libvirt accepts"
        raise MalformedHostXML(what="domain", reason=reason)
    return int(int(memory.text or "0") * _KIB_PER[unit] // 1024)


def _pci_address(address: ET.Element) -> str:
    def part(name: str) -> int:
        return int(address.get(name, "0"), 0)

    return f"{part('domain'):04x}:{part('bus'):02x}:{part('slot'):02x}.{part('function'):x}"


def _hostdev_addresses(root: ET.Element) -> tuple[str, ...]:
    found = root.findall("devices/hostdev[@mode='subsystem'][@type='pci']/source/address")
    return tuple(sorted(_pci_address(address) for address in found))


def _recorded_instance(uuid: str, root: ET.Element) -> Instance | None:
    node = root.find(f"metadata/{{{RECOVERY_NS}}}recovery")
    if node is None:
        return None
    try:
        data = base64.b64decode((node.text or "").strip(), validate=True)
        return decode_recovery(uuid, data).instance
    except (binascii.Error, ValueError, RecoveryDataInvalid) as exc:
        log.warning("domain %s: recovery record unreadable, counted by its XML: %s", uuid, exc)
        return None


def _recorded_sizes(instance: Instance) -> Resources:
    if instance.obj_attr_is_set("flavor"):
        return Resources.of_flavor(instance.flavor)
    return Resources(instance.vcpus, instance.memory_mb, instance.root_gb + instance.ephemeral_gb)


def parse_domain_usage(uuid: str, xml: str) -> DomainUsage:
    """The usage of the domain `uuid` whose XML is `xml`."""
    root = ET.fromstring(xml)
    pci = _hostdev_addresses(root)
    instance = _recorded_instance(uuid, root)
    if instance is not None:
        return DomainUsage(uuid, _recorded_sizes(instance), pci, recorded=True)
    vcpus = int((root.findtext("vcpu") or "0").strip() or 0)
    return DomainUsage(uuid, Resources(vcpus, _memory_mb(root), 0), pci, recorded=False)


def read_domain_usage(conn: libvirt.virConnect) -> list[DomainUsage]:
    """Every domain's usage, running or not (blocking)."""
    usages = []
    for dom in conn.listAllDomains(0):
        try:
            usages.append(parse_domain_usage(dom.UUIDString(), dom.XMLDesc(0)))
        except libvirt.libvirtError as exc:
            if not is_domain_gone(exc):  # undefined since it was listed: it holds nothing
                raise
    return sorted(usages, key=lambda usage: usage.uuid)
