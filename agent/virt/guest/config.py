"""The domain XML of one guest, from `Instance`, `ImageMeta`, its devices and `GuestSettings`.

Only xml.etree builds it (`agent.virt.guest.elements`): every value that came in a message is an
element's text or an attribute's value, checked for what XML can carry, so a hostile name or
metadata value cannot change the document's structure. Disks and interfaces arrive as
elements already built by their drivers (`agent.virt.guest.disks`, `agent.virt.volumes`,
`agent.virt.vifs`); this module shapes the rest: machine, firmware, CPU, memory, consoles,
graphics, metadata and SMBIOS.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent.virt.guest.config_devices import console_devices, extra_devices
from agent.virt.guest.elements import checked, element, sub, to_xml
from agent.virt.guest.errors import GuestConfigError
from agent.virt.guest.metadata import instance_element, recovery_element, sysinfo_element
from agent.virt.guest.settings import GuestSettings
from schemas.objects.enums import FirmwareType
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance

# libvirt refuses '/' in a domain name (it names files after it); newlines make log lines lie.
_NAME_FORBIDDEN = ("/", "\n", "\r")
MAX_NAME_LENGTH = 255
TOPOLOGY_SPECS = ("hw:cpu_sockets", "hw:cpu_cores", "hw:cpu_threads")


@dataclass(slots=True, frozen=True)
class KernelBoot:
    """Direct kernel boot: paths QEMU reads the kernel and initrd from, and the command line."""

    kernel: str
    initrd: str | None = None
    cmdline: str | None = None


@dataclass(slots=True, frozen=True)
class GuestDevices:
    """What the guest is given besides the basics: disk and interface elements in guest
    order, where its serial console is logged, and how it boots."""

    disks: Sequence[ET.Element] = ()
    interfaces: Sequence[ET.Element] = ()
    console_log: str | None = None
    kernel: KernelBoot | None = None


def domain_name(instance: Instance) -> str:
    """The libvirt domain name, checked: `GuestConfigError` for a name libvirt cannot take."""
    name = checked(instance.name, "instance name")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise GuestConfigError(
            uuid=instance.uuid, reason=f"name must be 1 to {MAX_NAME_LENGTH} characters: {name!r}"
        )
    for forbidden in _NAME_FORBIDDEN:
        if forbidden in name:
            raise GuestConfigError(
                uuid=instance.uuid, reason=f"name {name!r} contains {forbidden!r}"
            )
    return name


def cpu_topology(vcpus: int, extra_specs: Mapping[str, str]) -> tuple[int, int, int]:
    """(sockets, cores, threads) from the flavor's `hw:cpu_*` extra specs, their product
    `vcpus`; unset ones are derived (sockets first). `ValueError` when none fits."""
    given: dict[str, int] = {}
    for spec in TOPOLOGY_SPECS:
        raw = extra_specs.get(spec)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{spec}={raw!r} is not an integer") from None
        if value < 1:
            raise ValueError(f"{spec}={raw!r} must be at least 1")
        given[spec] = value
    sockets, cores, threads = (given.get(spec) for spec in TOPOLOGY_SPECS)
    fixed = 1
    for part in (sockets, cores, threads):
        fixed *= part or 1
    if vcpus % fixed:
        raise ValueError(f"{given} does not divide {vcpus} vCPUs")
    rest = vcpus // fixed
    if sockets is None:
        sockets, rest = rest, 1
    elif cores is None:
        cores, rest = rest, 1
    elif threads is None:
        threads, rest = rest, 1
    if rest != 1:
        raise ValueError(f"{given} multiply to {fixed}, not {vcpus} vCPUs")
    return (sockets, cores or 1, threads or 1)


def build_domain_xml(
    instance: Instance,
    image_meta: ImageMeta,
    settings: GuestSettings,
    devices: GuestDevices,
    *,
    recovery: bytes = b"",
    created: datetime | None = None,
) -> str:
    """The complete domain XML. Raises `GuestConfigError` (or its `InvalidXMLValue`) for
    values that cannot make a valid domain; nothing is defined here."""
    if instance.vcpus < 1 or instance.memory_mb < 1:
        raise GuestConfigError(
            uuid=instance.uuid,
            reason=f"vcpus ({instance.vcpus}) and memory_mb ({instance.memory_mb}) must be >= 1",
        )
    domain = element("domain", type=settings.virt_type)
    sub(domain, "name", domain_name(instance))
    sub(domain, "uuid", instance.uuid)
    metadata = sub(domain, "metadata")
    metadata.append(instance_element(instance, image_meta, created))
    metadata.append(recovery_element(recovery))
    sub(domain, "memory", str(instance.memory_mb), unit="MiB")
    sub(domain, "vcpu", str(instance.vcpus), placement="static")
    domain.append(sysinfo_element(instance))
    domain.append(_os_element(instance, image_meta, settings, devices.kernel))
    features = sub(domain, "features")
    # Without <acpi/> QEMU runs with no ACPI: no power button, so no clean shutdown.
    sub(features, "acpi")
    sub(features, "apic")
    domain.append(_cpu_element(instance, settings))
    clock = sub(domain, "clock", offset="utc")
    sub(clock, "timer", name="pit", tickpolicy="delay")
    sub(clock, "timer", name="rtc", tickpolicy="catchup")
    sub(clock, "timer", name="hpet", present="no")
    sub(domain, "on_poweroff", "destroy")
    sub(domain, "on_reboot", "restart")
    sub(domain, "on_crash", "destroy")
    devs = sub(domain, "devices")
    devs.extend(devices.disks)
    devs.extend(devices.interfaces)
    devs.extend(console_devices(devices.console_log))
    devs.extend(extra_devices(instance.uuid, image_meta.properties, settings, devices.disks))
    return to_xml(domain)


def _os_element(
    instance: Instance, image_meta: ImageMeta, settings: GuestSettings, kernel: KernelBoot | None
) -> ET.Element:
    props = image_meta.properties
    os_el = element("os")
    if props.hw_firmware_type == FirmwareType.UEFI:
        # libvirt picks an EFI firmware from the host's descriptors; none installed fails
        # the define with libvirt's own message.
        os_el.set("firmware", "efi")
    machine = checked(props.hw_machine_type or settings.machine_type, "hw_machine_type")
    arch = checked(props.hw_architecture or settings.arch, "hw_architecture")
    sub(os_el, "type", "hvm", arch=arch, machine=machine)
    if kernel is not None:
        sub(os_el, "kernel", kernel.kernel)
        if kernel.initrd is not None:
            sub(os_el, "initrd", kernel.initrd)
        if kernel.cmdline:
            sub(os_el, "cmdline", checked(kernel.cmdline, "os_command_line"))
    else:
        sub(os_el, "boot", dev="hd")
    if props.hw_boot_menu:
        sub(os_el, "bootmenu", enable="yes")
    sub(os_el, "smbios", mode="sysinfo")
    return os_el


def _cpu_element(instance: Instance, settings: GuestSettings) -> ET.Element:
    try:
        sockets, cores, threads = cpu_topology(instance.vcpus, instance.flavor.extra_specs)
    except ValueError as exc:
        raise GuestConfigError(uuid=instance.uuid, reason=f"CPU topology: {exc}") from None
    cpu = element("cpu")
    if settings.cpu_mode in ("host-model", "host-passthrough"):
        cpu.set("mode", settings.cpu_mode)
    elif settings.cpu_mode == "custom":
        cpu.set("mode", "custom")
        cpu.set("match", "exact")
        sub(cpu, "model", settings.cpu_model, fallback="forbid")
    sub(cpu, "topology", sockets=str(sockets), cores=str(cores), threads=str(threads))
    return cpu
