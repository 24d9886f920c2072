"""The domain XML builder: structure, hostile values, and what XML cannot carry."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.virt.guest.config import (
    GuestDevices,
    KernelBoot,
    build_domain_xml,
    cpu_topology,
)
from agent.virt.guest.disks import local_disk_element
from agent.virt.guest.elements import element, to_xml
from agent.virt.guest.errors import GuestConfigError, InvalidXMLValue
from agent.virt.guest.metadata import (
    INSTANCE_NS,
    RECOVERY_NS,
    parse_recovery,
    recovery_fragment,
)
from agent.virt.guest.settings import GuestSettings
from tests.agent.virt.guest import samples

HOSTILE = "evil</name><devices><disk type='file'/></devices><name>x\"'&]]>\t\nend"
INST = f"{{{INSTANCE_NS}}}"


def settings(**overrides: object) -> GuestSettings:
    return samples.settings(Path("/srv/virtactor"), **overrides)


def build(devices: GuestDevices | None = None, image: object = None, **overrides: object) -> str:
    image_meta = image if image is not None else samples.image_meta()
    return build_domain_xml(
        samples.instance(**overrides),
        image_meta,  # type: ignore[arg-type]
        settings(),
        devices or GuestDevices(console_log="/srv/virtactor/instances/x/console.log"),
        recovery=b"\x00\x01recovery\xff",
    )


def parse(xml: str) -> ET.Element:
    return ET.fromstring(xml)


# --- hostile values ------------------------------------------------------------------------


def test_a_hostile_display_name_and_metadata_stay_text_and_change_no_structure() -> None:
    plain = parse(build())
    hostile = parse(build(display_name=HOSTILE, metadata={HOSTILE: HOSTILE, "k": "]]><x/>"}))
    assert hostile.findtext(f"metadata/{INST}instance/{INST}name") == HOSTILE
    items = hostile.findall(f"metadata/{INST}instance/{INST}metadata/{INST}item")
    assert [(i.get("key"), i.text) for i in items] == [(HOSTILE, HOSTILE), ("k", "]]><x/>")]
    assert [e.tag for e in hostile.iter() if not e.tag.startswith(INST)] == [
        e.tag for e in plain.iter() if not e.tag.startswith(INST)
    ]
    assert hostile.findall("devices/disk") == []


def test_a_domain_name_with_markup_and_quotes_is_carried_as_text() -> None:
    name = "db <1> 'primary' \"a&b\" ]]>"
    domain = parse(build(name=name))
    assert domain.findtext("name") == name
    assert len(domain.findall("name")) == 1


def test_a_control_character_in_the_name_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidXMLValue) as caught:
        build(name="web\x01")
    assert str(caught.value) == (
        "instance name cannot go into domain XML: character U+0001 at offset 3 is not allowed "
        "in XML (value 'web\\x01')"
    )


def test_a_control_character_in_a_metadata_value_is_refused_naming_the_key() -> None:
    with pytest.raises(InvalidXMLValue) as caught:
        build(metadata={"role": "a\x1bb"})
    assert caught.value.what == "instance metadata value of 'role'"
    assert "U+001B at offset 1" in str(caught.value)


def test_a_slash_or_newline_in_the_domain_name_is_refused() -> None:
    for name, shown in (("a/b", "'/'"), ("a\nb", "'\\n'")):
        with pytest.raises(GuestConfigError) as caught:
            build(name=name)
        assert str(caught.value) == (
            f"cannot build the domain of instance {samples.INSTANCE_UUID}: "
            f"name {name!r} contains {shown}"
        )


def test_the_last_check_catches_a_value_that_bypassed_the_helpers() -> None:
    root = element("domain")
    ET.SubElement(root, "name").text = "x\x00y"
    with pytest.raises(InvalidXMLValue) as caught:
        to_xml(root)
    assert caught.value.what == "<name> text"


def not_carried(char: str) -> bool:
    code = ord(char)
    return (
        (code < 0x20 and char not in "\t\n") or 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF)
    )


@given(st.text(min_size=1, max_size=40))
def test_any_text_either_round_trips_exactly_or_is_refused_with_a_typed_error(text: str) -> None:
    try:
        xml = build(display_name=text, metadata={text: text})
    except InvalidXMLValue:
        assert any(not_carried(c) for c in text)
        return
    assert not any(not_carried(c) for c in text)
    meta = parse(xml).find(f"metadata/{INST}instance")
    assert meta is not None
    assert meta.findtext(f"{INST}name") == text
    item = meta.find(f"{INST}metadata/{INST}item")
    assert item is not None
    assert (item.get("key"), item.text) == (text, text)


def test_a_carriage_return_is_refused_as_xml_would_turn_it_into_a_newline() -> None:
    with pytest.raises(InvalidXMLValue) as caught:
        build(display_name="a\r\nb")
    assert caught.value.what == "instance display name"
    assert "U+000D at offset 1" in str(caught.value)


# --- structure -----------------------------------------------------------------------------


def test_direct_kernel_boot_names_kernel_initrd_and_command_line() -> None:
    kernel = KernelBoot("/c/kernel", "/c/initrd", "console=ttyS0 quiet")
    os_el = parse(build(GuestDevices(kernel=kernel))).find("os")
    assert os_el is not None
    assert [(e.tag, e.text, e.attrib) for e in os_el] == [
        ("type", "hvm", {"arch": "x86_64", "machine": "pc"}),
        ("kernel", "/c/kernel", {}),
        ("initrd", "/c/initrd", {}),
        ("cmdline", "console=ttyS0 quiet", {}),
        ("smbios", None, {"mode": "sysinfo"}),
    ]


def test_a_disk_boot_uses_the_image_machine_type_and_uefi_firmware() -> None:
    image = samples.image_meta(hw_machine_type="q35", hw_firmware_type="uefi", hw_boot_menu=True)
    os_el = parse(build(image=image)).find("os")
    assert os_el is not None
    assert os_el.get("firmware") == "efi"
    assert os_el.find("type").get("machine") == "q35"  # type: ignore[union-attr]
    assert os_el.find("boot").get("dev") == "hd"  # type: ignore[union-attr]
    assert os_el.find("bootmenu").get("enable") == "yes"  # type: ignore[union-attr]


def test_memory_vcpus_topology_and_the_domain_type_come_from_instance_and_settings() -> None:
    flavor = samples.flavor(vcpus=4, memory_mb=512, extra_specs={"hw:cpu_threads": "2"})
    domain = parse(build(flavor=flavor, vcpus=4, memory_mb=512))
    assert domain.get("type") == "qemu"
    assert domain.find("memory").attrib == {"unit": "MiB"}  # type: ignore[union-attr]
    assert domain.findtext("memory") == "512"
    assert domain.findtext("vcpu") == "4"
    assert domain.find("cpu").attrib == {}  # type: ignore[union-attr]
    assert domain.find("cpu/topology").attrib == {  # type: ignore[union-attr]
        "sockets": "2",
        "cores": "1",
        "threads": "2",
    }


@pytest.mark.parametrize(
    ("vcpus", "specs", "expected"),
    [
        (4, {}, (4, 1, 1)),
        (4, {"hw:cpu_sockets": "1"}, (1, 4, 1)),
        (8, {"hw:cpu_sockets": "2", "hw:cpu_cores": "2"}, (2, 2, 2)),
        (6, {"hw:cpu_cores": "3", "hw:cpu_threads": "2"}, (1, 3, 2)),
    ],
)
def test_cpu_topology_fills_the_unset_parts(
    vcpus: int, specs: dict[str, str], expected: tuple[int, int, int]
) -> None:
    assert cpu_topology(vcpus, specs) == expected


def test_a_topology_that_does_not_multiply_to_the_vcpus_is_refused() -> None:
    flavor = samples.flavor(vcpus=3, extra_specs={"hw:cpu_cores": "2"})
    with pytest.raises(GuestConfigError) as caught:
        build(flavor=flavor, vcpus=3)
    assert str(caught.value) == (
        f"cannot build the domain of instance {samples.INSTANCE_UUID}: CPU topology: "
        "{'hw:cpu_cores': 2} does not divide 3 vCPUs"
    )
    with pytest.raises(ValueError, match=r"hw:cpu_sockets='two' is not an integer"):
        cpu_topology(2, {"hw:cpu_sockets": "two"})


@pytest.mark.parametrize("mode", ["host-model", "host-passthrough"])
def test_the_cpu_mode_setting_is_the_cpu_element_mode(mode: str) -> None:
    xml = build_domain_xml(
        samples.instance(), samples.image_meta(), settings(cpu_mode=mode), GuestDevices()
    )
    assert parse(xml).find("cpu").get("mode") == mode  # type: ignore[union-attr]


def test_a_custom_cpu_model_is_exact_and_forbids_fallback() -> None:
    xml = build_domain_xml(
        samples.instance(),
        samples.image_meta(),
        settings(cpu_mode="custom", cpu_model="Skylake-Client"),
        GuestDevices(),
    )
    cpu = parse(xml).find("cpu")
    assert cpu is not None
    assert cpu.attrib == {"mode": "custom", "match": "exact"}
    assert cpu.find("model").attrib == {"fallback": "forbid"}  # type: ignore[union-attr]
    assert cpu.findtext("model") == "Skylake-Client"


def test_consoles_graphics_and_balloon_are_present() -> None:
    devices = parse(build(GuestDevices(console_log="/i/console.log"))).find("devices")
    assert devices is not None
    serial = devices.find("serial")
    assert serial is not None and serial.get("type") == "pty"
    assert serial.find("log").attrib == {"file": "/i/console.log", "append": "on"}  # type: ignore[union-attr]
    assert devices.find("console/target").attrib == {"type": "serial", "port": "0"}  # type: ignore[union-attr]
    graphics = devices.find("graphics")
    assert graphics is not None
    assert graphics.attrib == {"type": "vnc", "autoport": "yes", "listen": "127.0.0.1"}
    assert devices.find("video/model").get("type") == "vga"  # type: ignore[union-attr]
    assert devices.find("memballoon").get("model") == "virtio"  # type: ignore[union-attr]
    assert devices.find("channel") is None


def test_image_properties_add_agent_channel_rng_tablet_and_scsi_controller() -> None:
    image = samples.image_meta(
        hw_qemu_guest_agent=True,
        hw_rng_model="virtio",
        hw_pointer_model="usbtablet",
        hw_scsi_model="virtio-scsi",
        hw_video_model="virtio",
    )
    devices = parse(build(image=image)).find("devices")
    assert devices is not None
    assert devices.find("channel/target").attrib == {  # type: ignore[union-attr]
        "type": "virtio",
        "name": "org.qemu.guest_agent.0",
    }
    assert devices.findtext("rng/backend") == "/dev/urandom"
    assert devices.find("input").attrib == {"type": "tablet", "bus": "usb"}  # type: ignore[union-attr]
    assert devices.find("controller").attrib == {  # type: ignore[union-attr]
        "type": "scsi",
        "index": "0",
        "model": "virtio-scsi",
    }
    assert devices.find("video/model").get("type") == "virtio"  # type: ignore[union-attr]


def test_an_unknown_rng_or_pointer_model_is_refused() -> None:
    with pytest.raises(GuestConfigError, match="hw_rng_model 'egd' is not virtio"):
        build(image=samples.image_meta(hw_rng_model="egd"))
    with pytest.raises(GuestConfigError, match="hw_pointer_model 'ps2' is not usbtablet"):
        build(image=samples.image_meta(hw_pointer_model="ps2"))


def test_disks_and_interfaces_are_placed_first_among_the_devices_in_order() -> None:
    disks = [
        local_disk_element("/i/disk", "vda", "virtio", "none"),
        local_disk_element("/i/disk.eph0", "vdb", "virtio", "none"),
    ]
    iface = element("interface", type="ethernet")
    devices = parse(build(GuestDevices(disks=disks, interfaces=[iface]))).find("devices")
    assert devices is not None
    assert [d.tag for d in devices][:3] == ["disk", "disk", "interface"]
    assert [d.find("source").get("file") for d in devices.findall("disk")] == [  # type: ignore[union-attr]
        "/i/disk",
        "/i/disk.eph0",
    ]
    assert devices.find("disk/driver").attrib == {  # type: ignore[union-attr]
        "name": "qemu",
        "type": "qcow2",
        "cache": "none",
    }


def test_a_scsi_disk_brings_its_controller() -> None:
    disks = [local_disk_element("/i/disk", "sda", "scsi", "none")]
    devices = parse(build(GuestDevices(disks=disks))).find("devices")
    assert devices is not None
    assert devices.find("controller").get("model") == "virtio-scsi"  # type: ignore[union-attr]


# --- metadata and sysinfo ------------------------------------------------------------------


def test_metadata_names_uuid_flavor_owner_and_image() -> None:
    domain = parse(build())
    meta = domain.find(f"metadata/{INST}instance")
    assert meta is not None
    assert meta.findtext(f"{INST}uuid") == samples.INSTANCE_UUID
    assert meta.findtext(f"{INST}name") == "web 1"
    assert meta.find(f"{INST}flavor").attrib == {"name": "tiny", "id": "f-tiny"}  # type: ignore[union-attr]
    assert meta.findtext(f"{INST}flavor/{INST}memory") == "128"
    assert meta.find(f"{INST}owner/{INST}user").get("uuid") == "user-1"  # type: ignore[union-attr]
    assert meta.find(f"{INST}owner/{INST}project").get("uuid") == "project-1"  # type: ignore[union-attr]
    assert meta.find(f"{INST}root").attrib == {"type": "image", "uuid": samples.IMAGE_ID}  # type: ignore[union-attr]


def test_the_recovery_bytes_travel_as_base64_in_their_own_namespace() -> None:
    domain = parse(build())
    recovery = domain.find(f"metadata/{{{RECOVERY_NS}}}recovery")
    assert recovery is not None
    assert base64.b64decode(recovery.text or "") == b"\x00\x01recovery\xff"
    fragment = recovery_fragment(b"\x00payload")
    assert parse_recovery(fragment, samples.INSTANCE_UUID) == b"\x00payload"


def test_recovery_metadata_that_is_not_base64_is_a_typed_error() -> None:
    with pytest.raises(GuestConfigError) as caught:
        parse_recovery("<recovery>not base64!</recovery>", samples.INSTANCE_UUID)
    assert str(caught.value).startswith(
        f"cannot build the domain of instance {samples.INSTANCE_UUID}: the recovery metadata "
        "is not base64 in XML"
    )


def test_smbios_sysinfo_names_the_instance() -> None:
    domain = parse(build())
    entries = {e.get("name"): e.text for e in domain.findall("sysinfo/system/entry")}
    assert entries["manufacturer"] == "virtactor"
    assert entries["uuid"] == samples.INSTANCE_UUID
    assert entries["serial"] == samples.INSTANCE_UUID
    assert domain.find("os/smbios").get("mode") == "sysinfo"  # type: ignore[union-attr]
