"""Domain XML for the system tests, built with xml.etree so no value is ever pasted into markup.

Both kinds are `type='qemu'` (TCG): tests must not need KVM, and the default CPU model hung
under KVM on the machines these tests were written on.

- `firmware_domain_xml`: no disk, network boot, no NIC: the guest sits in SeaBIOS forever.
  Enough for lifecycle and live-migration tests, and cheap (64 MiB, no boot).
- `guest_domain_xml`: the real guest of `guest_image`, its serial console appended to a file
  that stays readable after the domain stops and across a live migration on this machine.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from schemas.errors import VirtactorError
from tests.system.guest_image import GuestImage, dirty_cmdline_arg

# What the guest's kernel, busybox and page cache need besides any memory it is told to dirty.
GUEST_BASE_MEMORY_MIB = 128


class DomainXMLError(VirtactorError):
    """A test domain was asked for with values that cannot make a working domain."""

    msg_fmt = "cannot build domain {name!r}: {reason}"


def firmware_domain_xml(name: str, uuid: str, memory_mib: int = 64) -> str:
    """A domain that runs forever with no disk and no OS: it network-boots and finds nothing."""
    domain = _domain(name, uuid, memory_mib)
    os_el = ET.SubElement(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    ET.SubElement(os_el, "boot", dev="network")
    ET.SubElement(domain, "devices")
    return ET.tostring(domain, encoding="unicode")


def guest_domain_xml(
    name: str,
    uuid: str,
    image: GuestImage,
    console_log: Path,
    memory_mib: int = GUEST_BASE_MEMORY_MIB,
    disks: Sequence[Path] = (),
    dirty_mib: int = 0,
) -> str:
    """The real test guest, booted from `image` with its console appended to `console_log`.

    `disks` are raw image files attached as virtio disks vda, vdb, ... in that order;
    `dirty_mib` > 0 starts the guest's memory-dirtying loop over that many MiB, which needs
    `memory_mib` of at least GUEST_BASE_MEMORY_MIB + dirty_mib.
    """
    if dirty_mib and memory_mib < GUEST_BASE_MEMORY_MIB + dirty_mib:
        raise DomainXMLError(
            name=name,
            reason=f"memory_mib={memory_mib} leaves no room to dirty {dirty_mib} MiB "
            f"(needs at least {GUEST_BASE_MEMORY_MIB + dirty_mib})",
        )
    if len(disks) > 26:
        raise DomainXMLError(name=name, reason=f"{len(disks)} disks is more than vda..vdz")
    cmdline = image.cmdline
    if dirty_mib:
        cmdline = f"{cmdline} {dirty_cmdline_arg(dirty_mib)}"
    domain = _domain(name, uuid, memory_mib)
    os_el = ET.SubElement(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "kernel", str(image.kernel))
    _sub(os_el, "initrd", str(image.initrd))
    _sub(os_el, "cmdline", cmdline)
    features = ET.SubElement(domain, "features")
    # Without <acpi/> libvirt starts QEMU with no ACPI: no power button, no PCI hotplug.
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    devices = ET.SubElement(domain, "devices")
    for index, disk in enumerate(disks):
        devices.append(disk_element(disk, f"vd{chr(ord('a') + index)}"))
    serial = ET.SubElement(devices, "serial", type="file")
    # append='on': a migration's destination QEMU reopens the same file; it must not truncate.
    ET.SubElement(serial, "source", path=str(console_log), append="on")
    ET.SubElement(serial, "target", port="0")
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")


def disk_element(path: Path, target: str) -> ET.Element:
    """A raw file as a virtio disk at `target` (vda, vdb, ...)."""
    disk = ET.Element("disk", type="file", device="disk")
    ET.SubElement(disk, "driver", name="qemu", type="raw")
    ET.SubElement(disk, "source", file=str(path))
    ET.SubElement(disk, "target", dev=target, bus="virtio")
    return disk


def disk_xml(path: Path, target: str) -> str:
    """`disk_element` as the XML string attachDeviceFlags/detachDeviceFlags take."""
    return ET.tostring(disk_element(path, target), encoding="unicode")


def _domain(name: str, uuid: str, memory_mib: int) -> ET.Element:
    if memory_mib <= 0:
        raise DomainXMLError(name=name, reason=f"memory_mib must be positive, got {memory_mib}")
    domain = ET.Element("domain", type="qemu")
    _sub(domain, "name", name)
    _sub(domain, "uuid", uuid)
    _sub(domain, "memory", str(memory_mib), unit="MiB")
    _sub(domain, "vcpu", "1")
    return domain


def _sub(parent: ET.Element, tag: str, text: str, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = text
    return element
