"""The disk plan: root, ephemeral, swap and volume disks, and their device names."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agent.virt.guest.disks import (
    LocalDisk,
    device_name,
    parse_device_name,
    plan_disks,
)
from agent.virt.guest.errors import GuestConfigError
from agent.virt.guest.spawn import plan_spawn
from agent.virt.images import ImageCache
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from tests.agent.virt.guest import samples


def bdm(n: int, **values: object) -> BlockDeviceMapping:
    return BlockDeviceMapping(
        uuid=f"00000000-0000-4000-8000-{n:012d}", instance_uuid=samples.INSTANCE_UUID, **values
    )


def volume_bdm(
    n: int, device_name: str | None = None, boot_index: int | None = None
) -> BlockDeviceMapping:
    return bdm(
        n,
        source_type="volume",
        destination_type="volume",
        device_name=device_name,
        boot_index=boot_index,
        volume_id=f"vol-{n}",
        connection_info=samples.connection("file", device_path=f"/v/{n}"),
    )


def test_device_names_count_like_spreadsheet_columns() -> None:
    assert [device_name("virtio", i) for i in (0, 1, 25, 26, 27)] == [
        "vda",
        "vdb",
        "vdz",
        "vdaa",
        "vdab",
    ]
    assert device_name("scsi", 2) == "sdc"
    assert device_name("ide", 0) == "hda"


def test_device_names_parse_with_or_without_dev() -> None:
    assert parse_device_name("/dev/vdc") == ("vdc", "virtio")
    assert parse_device_name("sdb") == ("sdb", "scsi")
    with pytest.raises(GuestConfigError, match=r"device name '/dev/nvme0n1' is not"):
        parse_device_name("/dev/nvme0n1")
    with pytest.raises(GuestConfigError):
        parse_device_name("vdb\n")


def test_an_image_instance_with_ephemeral_and_swap_gets_vda_vdb_vdc() -> None:
    flavor = samples.flavor(root_gb=1, ephemeral_gb=2, swap=256)
    plan = plan_disks(samples.instance(flavor=flavor), samples.image_meta(), None)
    assert plan.local == [
        LocalDisk("disk", "vda", "virtio", 1024, from_image=True),
        LocalDisk("disk.eph0", "vdb", "virtio", 2048),
        LocalDisk("disk.swap", "vdc", "virtio", 256),
    ]
    assert plan.volumes == []
    assert plan.root_device_name == "/dev/vda"


def test_a_root_disk_of_zero_gb_keeps_the_image_size_and_the_image_bus_names_it() -> None:
    plan = plan_disks(samples.instance(), samples.image_meta(hw_disk_bus="sata"), None)
    assert plan.local == [LocalDisk("disk", "sda", "sata", None, from_image=True)]


def test_a_kernel_only_instance_has_no_root_disk() -> None:
    plan = plan_disks(samples.instance(image_ref=None), samples.image_meta(), None)
    assert plan.local == []
    assert plan.root_device_name is None


def test_boot_from_volume_and_named_volumes_keep_their_names() -> None:
    bdms = BlockDeviceMappingList(
        objects=[volume_bdm(1, "/dev/vda", boot_index=0), volume_bdm(2, "/dev/vdd"), volume_bdm(3)]
    )
    plan = plan_disks(samples.instance(image_ref=None), samples.image_meta(), bdms)
    assert plan.local == []
    assert [(v.target, v.volume_id) for v in plan.volumes] == [
        ("vda", "vol-1"),
        ("vdd", "vol-2"),
        ("vdb", "vol-3"),
    ]
    assert plan.root_device_name == "/dev/vda"


def test_blank_local_mappings_are_ephemeral_and_swap_disks() -> None:
    bdms = BlockDeviceMappingList(
        objects=[
            bdm(1, source_type="blank", destination_type="local", volume_size=3),
            bdm(
                2,
                source_type="blank",
                destination_type="local",
                guest_format="swap",
                volume_size=1,
                device_name="/dev/vdf",
            ),
        ]
    )
    plan = plan_disks(samples.instance(), samples.image_meta(), bdms)
    assert plan.local == [
        LocalDisk("disk", "vda", "virtio", None, from_image=True),
        LocalDisk("disk.eph0", "vdb", "virtio", 3072),
        LocalDisk("disk.swap", "vdf", "virtio", 1024),
    ]


def test_unsupported_mappings_are_refused_naming_them() -> None:
    snapshot_local = bdm(4, source_type="snapshot", destination_type="local")
    with pytest.raises(GuestConfigError) as caught:
        plan_disks(
            samples.instance(),
            samples.image_meta(),
            BlockDeviceMappingList(objects=[snapshot_local]),
        )
    assert str(caught.value) == (
        f"cannot build the domain of instance {samples.INSTANCE_UUID}: mapping "
        "00000000-0000-4000-8000-000000000004 (snapshot -> local) is not supported"
    )
    no_connection = bdm(5, source_type="volume", destination_type="volume")
    with pytest.raises(
        GuestConfigError,
        match="volume mapping 00000000-0000-4000-8000-000000000005 has no connection_info",
    ):
        plan_disks(
            samples.instance(),
            samples.image_meta(),
            BlockDeviceMappingList(objects=[no_connection]),
        )
    bad_name = volume_bdm(6, "/dev/../vdb")
    with pytest.raises(GuestConfigError, match=r"device_name '/dev/../vdb' is not"):
        plan_disks(
            samples.instance(), samples.image_meta(), BlockDeviceMappingList(objects=[bad_name])
        )


def test_a_config_drive_is_planned_as_a_read_only_disk_after_the_others(tmp_path: Path) -> None:
    settings = samples.settings(tmp_path)
    cache = ImageCache(settings.images_path, settings.image_cache_path)
    plan = plan_spawn(
        samples.instance(config_drive=True),
        samples.image_meta(),
        None,
        None,
        b"",
        settings,
        cache,
        injected_files=[("/etc/motd", b"hello")],
        admin_password="s3cret",
    )
    assert plan.config_drive is not None
    assert plan.config_drive["openstack/content/0000"] == b"hello"
    disks = ET.fromstring(plan.xml).findall("devices/disk")
    drive = disks[-1]
    assert drive.find("source").get("file", "").endswith("/disk.config")
    assert drive.find("readonly") is not None and drive.find("driver").get("type") == "raw"
    # Nothing is made while planning.
    assert not (tmp_path / "instances").exists()
