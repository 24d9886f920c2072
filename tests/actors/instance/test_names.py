"""Checking names, paths and connections before they reach the hypervisor, choosing device
names, and the recovery record's round trip."""

from __future__ import annotations

import pytest

from actors.instance.errors import InvalidConnectionInfo, InvalidInstanceArgument
from actors.instance.names import (
    check_connection,
    check_domain_name,
    check_guest_path,
    check_image_id,
    check_vif,
    default_device_names,
    default_root_device_name,
    device_name,
    next_device_name,
)
from actors.instance.recovery import (
    RecoveryDataInvalid,
    RecoveryRecord,
    decode_recovery,
    encode_recovery,
)
from schemas.codec import encode
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.image import ImageMeta, ImageMetaProps
from schemas.objects.volume import VolumeConnection, VolumeConnectionData
from tests.actors.instance.fakes import UUID, file_volume, image_meta, instance, nbd_volume, vif

OTHER = "11111111-2222-4333-8444-555555555555"


@pytest.mark.parametrize(
    "name",
    [
        "</name><devices><disk/></devices><name>",
        "../../etc/passwd",
        "a b",
        "instance\n1",
        "",
        "x" * 65,
        "-leading-dash",
        "name'quote",
    ],
)
def test_a_hostile_domain_name_is_refused_with_its_value(name: str) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        check_domain_name("spawn", UUID, name)
    assert caught.value.argument == "instance.name"
    assert repr(name) in str(caught.value)


def test_ordinary_domain_names_pass() -> None:
    for name in ("instance-00000001", "web.1", "A_b-c"):
        assert check_domain_name("spawn", UUID, name) == name


@pytest.mark.parametrize(
    ("mountpoint", "device"),
    [("/dev/vdb", "vdb"), ("vdc", "vdc"), ("/dev/sdaa", "sdaa"), ("/dev/xvdb", "xvdb")],
)
def test_a_mountpoint_names_a_guest_disk(mountpoint: str, device: str) -> None:
    assert device_name("attach_volume", UUID, mountpoint) == device


@pytest.mark.parametrize("mountpoint", ["/dev/../vdb", "/dev/vdb'/>", "vd1", "/tmp/x", "/dev/vda/"])
def test_a_mountpoint_that_is_not_a_guest_disk_is_refused(mountpoint: str) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        device_name("attach_volume", UUID, mountpoint)
    assert str(caught.value) == (
        f"invalid mountpoint for attach_volume of instance {UUID}: "
        f"{mountpoint!r} is not a guest disk such as /dev/vdb"
    )


def test_an_image_id_must_be_a_uuid_as_it_becomes_a_file_name() -> None:
    assert check_image_id("snapshot", UUID, UUID.upper()) == UUID
    with pytest.raises(InvalidInstanceArgument) as caught:
        check_image_id("snapshot", UUID, "../../etc/shadow")
    assert caught.value.reason == "'../../etc/shadow' is not a UUID"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("etc/motd", "not an absolute path"),
        ("/etc/\0motd", "it contains a NUL byte"),
        ("/tmp/../etc/shadow", "it contains '..'"),
    ],
)
def test_a_guest_path_must_be_plain_and_absolute(path: str, problem: str) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        check_guest_path("inject_file", UUID, path)
    assert caught.value.reason == f"{path!r}: {problem}"


def test_connection_info_missing_what_its_type_needs_is_refused() -> None:
    empty = VolumeConnection(driver_volume_type="nbd", data=VolumeConnectionData(name="v"))
    with pytest.raises(InvalidConnectionInfo) as caught:
        check_connection(UUID, empty)
    assert str(caught.value) == (
        f"invalid 'nbd' connection info for instance {UUID}: missing hosts, ports"
    )


@pytest.mark.parametrize(
    ("connection", "reason"),
    [
        (
            file_volume(path="relative/file"),
            "device_path 'relative/file' is not a plain absolute path",
        ),
        (
            file_volume(path="/srv/../etc/shadow"),
            "device_path '/srv/../etc/shadow' is not a plain absolute path",
        ),
        (nbd_volume(port="http"), "port 'http' is not a TCP port"),
        (nbd_volume(port="70000"), "port '70000' is not a TCP port"),
    ],
)
def test_malformed_connection_values_are_refused(connection: VolumeConnection, reason: str) -> None:
    with pytest.raises(InvalidConnectionInfo) as caught:
        check_connection(UUID, connection)
    assert caught.value.reason == reason


def test_a_host_device_name_that_could_not_name_a_network_device_is_refused() -> None:
    check_vif("attach_interface", UUID, vif(devname="tap-1234567890a"))
    with pytest.raises(InvalidInstanceArgument) as caught:
        check_vif("attach_interface", UUID, vif(devname="tap0; rm -rf /"))
    assert caught.value.argument == "vif.devname"


def test_the_root_device_follows_the_root_mapping_bus_then_the_image() -> None:
    virtio = image_meta()
    scsi = ImageMeta(properties=ImageMetaProps(hw_disk_bus="scsi"))
    ide_root = BlockDeviceMapping(
        uuid=OTHER,
        instance_uuid=UUID,
        source_type="image",
        destination_type="local",
        boot_index=0,
        disk_bus="ide",
    )
    assert default_root_device_name(virtio) == "/dev/vda"
    assert default_root_device_name(scsi) == "/dev/sda"
    assert default_root_device_name(scsi, ide_root) == "/dev/hda"


def test_device_names_skip_those_in_use_and_run_past_z() -> None:
    assert next_device_name("vd", {"vda", "vdb"}) == "vdc"
    used = {f"vd{c}" for c in "abcdefghijklmnopqrstuvwxyz"}
    assert next_device_name("vd", used) == "vdaa"


def test_unnamed_mappings_get_the_root_name_and_the_next_free_names() -> None:
    def bdm(n: int, **values: object) -> BlockDeviceMapping:
        return BlockDeviceMapping(
            uuid=f"00000000-0000-4000-8000-00000000000{n}",
            instance_uuid=UUID,
            source_type="volume",
            destination_type="volume",
            **values,
        )

    mappings = BlockDeviceMappingList(
        objects=[
            bdm(1),
            bdm(2, boot_index=0),
            bdm(3, device_name="/dev/vdb"),
            bdm(4, disk_bus="scsi"),
        ]
    )
    named = default_device_names("/dev/vda", mappings)
    assert [m.device_name for m in named] == ["/dev/vdc", "/dev/vda", "/dev/vdb", "/dev/sda"]
    assert mappings.objects[0].device_name is None  # the argument is left alone


def test_the_recovery_record_round_trips_without_change_marks() -> None:
    inst = instance(vm_state="active")
    inst.network_info = None
    record = RecoveryRecord(inst, image_meta(guest_agent=True))
    back = decode_recovery(UUID, encode_recovery(record))
    assert back.instance == inst
    assert back.image_meta == record.image_meta
    assert back.instance.obj_what_changed() == set()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1garbage", "cannot decode"),
        (encode([1, 2]), "a list, not a record"),
        (encode({"format": 9}), "format 9, this agent reads format 1"),
        (encode({"format": 1, "instance": None}), "it holds no Instance"),
        (encode({"format": 1, "instance": instance(OTHER)}), f"it names instance {OTHER}"),
    ],
)
def test_unreadable_recovery_data_is_a_typed_error(data: bytes, reason: str) -> None:
    with pytest.raises(RecoveryDataInvalid) as caught:
        decode_recovery(UUID, data)
    assert caught.value.reason.startswith(reason)
