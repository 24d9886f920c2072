"""`parse_domain_usage`: a domain this agent built is counted by its recorded flavor, any
other by its XML (vCPUs and memory, disk unknown); PCI devices are its `<hostdev>`s. Then
`read_domain_usage` over libvirt's test driver."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from actors.instance.recovery import RecoveryRecord, encode_recovery
from actors.tracker import DomainUsage, Resources
from agent.virt.domain_usage import parse_domain_usage, read_domain_usage
from agent.virt.guest.config import GuestDevices, build_domain_xml
from agent.virt.guest.metadata import recovery_element
from schemas.objects.instance import Instance
from tests.agent.virt.guest import samples

UUID = samples.INSTANCE_UUID
OTHER_UUID = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
BIG_FLAVOR = samples.flavor(vcpus=4, memory_mb=4096, root_gb=20, ephemeral_gb=10, swap=1536)


def recorded_instance(**overrides: object) -> Instance:
    """The instance whose XML says 1 vCPU and 512 MiB while its flavor says 4 and 4096."""
    values: dict[str, object] = {"flavor": BIG_FLAVOR, "vcpus": 1, "memory_mb": 512}
    return samples.instance(**(values | overrides))


def built_xml(instance: Instance, recovery: bytes | None = None) -> str:
    """The domain XML the agent defines for `instance`, its record in <metadata>."""
    record = encode_recovery(RecoveryRecord(instance)) if recovery is None else recovery
    return build_domain_xml(
        instance,
        samples.image_meta(),
        samples.settings(Path("/srv/virtactor")),
        GuestDevices(),
        recovery=record,
    )


def hostdev(bus: int, slot: int, function: int, domain: int = 0) -> ET.Element:
    """A PCI `<hostdev>` as libvirt writes it (hex with 0x), with its address in the guest."""
    node = ET.Element("hostdev", mode="subsystem", type="pci", managed="yes")
    source = ET.SubElement(node, "source")
    ET.SubElement(
        source,
        "address",
        domain=f"0x{domain:04x}",
        bus=f"0x{bus:02x}",
        slot=f"0x{slot:02x}",
        function=f"0x{function:x}",
    )
    # The device's address inside the guest: not the host device it is.
    ET.SubElement(
        node, "address", type="pci", domain="0x0000", bus="0x00", slot="0x07", function="0x0"
    )
    return node


def with_devices(xml: str, *devices: ET.Element) -> str:
    root = ET.fromstring(xml)
    devs = root.find("devices")
    if devs is None:
        devs = ET.SubElement(root, "devices")
    devs.extend(devices)
    return ET.tostring(root, encoding="unicode")


def plain_xml(memory: str = "<memory unit='KiB'>2097152</memory>", vcpus: str = "3") -> str:
    """A domain XML this agent did not build."""
    return (
        f"<domain type='kvm'><name>foreign</name><uuid>{OTHER_UUID}</uuid>{memory}"
        f"<currentMemory unit='KiB'>1048576</currentMemory>"
        f"<vcpu placement='static'>{vcpus}</vcpu><os><type>hvm</type></os><devices/></domain>"
    )


# --- a domain this agent built ----------------------------------------------------------------


def test_a_domain_with_the_agents_record_is_counted_by_its_flavor() -> None:
    usage = parse_domain_usage(UUID, built_xml(recorded_instance()))
    # 20 root + 10 ephemeral + 1536 MiB of swap rounded up to 2 GiB; not the XML's 1 / 512.
    assert usage == DomainUsage(UUID, Resources(4, 4096, 32), (), recorded=True)


def test_a_record_without_a_flavor_is_counted_by_the_instances_own_sizes() -> None:
    bare = Instance(uuid=UUID, vcpus=2, memory_mb=1024, root_gb=5, ephemeral_gb=3)
    root = ET.fromstring(plain_xml().replace(OTHER_UUID, UUID))
    metadata = ET.SubElement(root, "metadata")
    metadata.append(recovery_element(encode_recovery(RecoveryRecord(bare))))
    usage = parse_domain_usage(UUID, ET.tostring(root, encoding="unicode"))
    assert usage == DomainUsage(UUID, Resources(2, 1024, 8), (), recorded=True)


def test_the_record_is_found_under_the_prefix_libvirt_gives_its_namespace() -> None:
    # libvirt writes back <metadata> elements with the prefix virDomainSetMetadata was given.
    record = base64.b64encode(encode_recovery(RecoveryRecord(recorded_instance()))).decode()
    xml = (
        f"<domain type='kvm'><uuid>{UUID}</uuid><metadata>"
        "<virtactor-recovery:recovery "
        "xmlns:virtactor-recovery='https://virtactor.dev/xmlns/libvirt/recovery/1.0' "
        f"encoding='base64'>\n  {record}\n</virtactor-recovery:recovery>"
        "</metadata><memory unit='KiB'>524288</memory><vcpu>1</vcpu></domain>"
    )
    assert parse_domain_usage(UUID, xml).resources == Resources(4, 4096, 32)


@pytest.mark.parametrize(
    "recovery",
    [
        b"",  # a domain defined before its record was written
        b"\x00\x01 not msgpack \xff",
        encode_recovery(RecoveryRecord(samples.instance(uuid=OTHER_UUID))),  # another's record
    ],
    ids=["empty", "garbage", "another instance's"],
)
def test_a_domain_whose_record_is_unreadable_is_counted_by_its_xml(recovery: bytes) -> None:
    usage = parse_domain_usage(UUID, built_xml(recorded_instance(), recovery))
    assert usage == DomainUsage(UUID, Resources(1, 512, 0), (), recorded=False)


def test_a_record_that_is_not_base64_is_counted_by_its_xml() -> None:
    root = ET.fromstring(built_xml(recorded_instance()))
    for node in root.iter():
        if node.tag.endswith("}recovery"):
            node.text = "not base64 at all!"
    usage = parse_domain_usage(UUID, ET.tostring(root, encoding="unicode"))
    assert (usage.resources, usage.recorded) == (Resources(1, 512, 0), False)


# --- any other domain -------------------------------------------------------------------------


def test_a_domain_without_the_record_is_counted_by_its_xml_without_disk() -> None:
    usage = parse_domain_usage(OTHER_UUID, plain_xml())
    # <memory> (the maximum), not <currentMemory>.
    assert usage == DomainUsage(OTHER_UUID, Resources(3, 2048, 0), (), recorded=False)


@pytest.mark.parametrize(
    ("memory", "memory_mb"),
    [
        ("<memory unit='KiB'>2097152</memory>", 2048),
        ("<memory>2097152</memory>", 2048),  # KiB by default
        ("<memory unit='k'>2097152</memory>", 2048),
        ("<memory unit='MiB'>2048</memory>", 2048),
        ("<memory unit='M'>2048</memory>", 2048),
        ("<memory unit='GiB'>2</memory>", 2048),
        ("<memory unit='G'>2</memory>", 2048),
        ("<memory unit='bytes'>2147483648</memory>", 2048),
        ("<memory unit='b'>2147483648</memory>", 2048),
        ("<memory unit='KB'>2097152</memory>", 2000),  # 2097152000 bytes
        ("<memory unit='MB'>2048</memory>", 1953),  # 2048 x 10^6 bytes, rounded down
        ("<memory unit='GB'>2</memory>", 1907),
        ("<memory unit='KiB'>1000</memory>", 0),  # under a MiB
        ("<memory unit='TiB'>1</memory>", 1048576),
    ],
)
def test_memory_is_read_in_every_unit_libvirt_accepts(memory: str, memory_mb: int) -> None:
    assert parse_domain_usage(OTHER_UUID, plain_xml(memory)).resources.memory_mb == memory_mb


def test_a_domain_without_memory_or_vcpus_counts_zero() -> None:
    xml = f"<domain type='kvm'><uuid>{OTHER_UUID}</uuid></domain>"
    assert parse_domain_usage(OTHER_UUID, xml) == DomainUsage(
        OTHER_UUID, Resources(0, 0, 0), (), recorded=False
    )


# --- PCI devices ------------------------------------------------------------------------------


def test_pci_hostdevs_are_the_domains_pci_addresses_sorted() -> None:
    usb = ET.Element("hostdev", mode="subsystem", type="usb")
    ET.SubElement(ET.SubElement(usb, "source"), "vendor", id="0x1234")
    xml = with_devices(plain_xml(), hostdev(0x81, 0x02, 1), hostdev(0x3B, 0, 0), usb)
    usage = parse_domain_usage(OTHER_UUID, xml)
    assert usage.pci_addresses == ("0000:3b:00.0", "0000:81:02.1")


def test_a_pci_hostdev_in_a_pci_domain_other_than_0_keeps_it() -> None:
    xml = with_devices(plain_xml(), hostdev(0x05, 0x1F, 7, domain=0x10))
    assert parse_domain_usage(OTHER_UUID, xml).pci_addresses == ("0010:05:1f.7",)


def test_a_recorded_domain_reports_its_hostdevs_too() -> None:
    xml = with_devices(built_xml(recorded_instance()), hostdev(0xD8, 0, 0))
    usage = parse_domain_usage(UUID, xml)
    assert usage == DomainUsage(UUID, Resources(4, 4096, 32), ("0000:d8:00.0",), recorded=True)


# --- read_domain_usage on libvirt's test driver -----------------------------------------------


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[libvirt.virConnect]:
    """A private test driver holding one domain this agent did not build."""
    node = tmp_path / "node.xml"
    node.write_text(
        "<node><domain type='test'><name>foreign</name>"
        f"<uuid>{OTHER_UUID}</uuid><memory unit='MiB'>1024</memory><vcpu>2</vcpu>"
        "<os><type>hvm</type></os></domain></node>"
    )
    connection = libvirt.open(f"test://{node}")
    yield connection
    connection.close()


def test_read_domain_usage_counts_every_domain_sorted_by_uuid(conn: libvirt.virConnect) -> None:
    root = ET.fromstring(built_xml(recorded_instance()))
    root.set("type", "test")
    ours = conn.defineXML(ET.tostring(root, encoding="unicode"))
    try:
        usages = read_domain_usage(conn)
    finally:
        ours.undefine()
    assert usages == sorted(
        [
            DomainUsage(UUID, Resources(4, 4096, 32), (), recorded=True),
            DomainUsage(OTHER_UUID, Resources(2, 1024, 0), (), recorded=False),
        ],
        key=lambda usage: usage.uuid,
    )


class _GoneDomain:
    """A domain undefined between listing and reading it."""

    def __init__(self, code: int) -> None:
        self.code = code

    def UUIDString(self) -> str:
        return UUID

    def XMLDesc(self, flags: int) -> str:
        error = libvirt.libvirtError("domain not found")
        error.err = (self.code, libvirt.VIR_FROM_DOMAIN, "gone", 2, "gone", None, None, -1, -1)
        raise error


class _Connection:
    def __init__(self, *domains: object) -> None:
        self.domains = domains

    def listAllDomains(self, flags: int) -> list[object]:
        return list(self.domains)


def test_a_domain_undefined_while_it_is_read_holds_nothing() -> None:
    conn = _Connection(_GoneDomain(libvirt.VIR_ERR_NO_DOMAIN))
    assert read_domain_usage(conn) == []


def test_another_libvirt_error_while_reading_a_domain_propagates() -> None:
    conn = _Connection(_GoneDomain(libvirt.VIR_ERR_INTERNAL_ERROR))
    with pytest.raises(libvirt.libvirtError):
        read_domain_usage(conn)
