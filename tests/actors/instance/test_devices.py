"""Volumes, interfaces and device names through the instance actor (in-memory driver)."""

from __future__ import annotations

import pytest

from actors import ActorRef, ActorSystem
from actors.instance.errors import (
    DeviceInUse,
    InstanceInvalidState,
    InterfaceAlreadyAttached,
    InterfaceNotAttached,
    InvalidConnectionInfo,
    InvalidInstanceArgument,
    VolumeNotAttached,
)
from actors.instance.recovery import decode_recovery
from schemas.objects.block_device import BlockDeviceMapping, BlockDeviceMappingList
from schemas.objects.image import ImageMeta, ImageMetaProps
from schemas.objects.instance import Instance
from schemas.objects.volume import VolumeConnection, VolumeConnectionData
from tests.actors.instance.fakes import (
    UUID,
    FakeDriverError,
    FakeInstanceDriver,
    RecordingSink,
    file_volume,
    instance,
    nbd_volume,
    spawned_actor,
    vif,
)


@pytest.fixture
async def ref(system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink) -> ActorRef:
    ref, _actor = await spawned_actor(system, driver, sink)
    driver.journal.clear()
    return ref


def attach_args(connection: VolumeConnection, mountpoint: str) -> dict[str, object]:
    return {"instance": instance(), "connection_info": connection, "mountpoint": mountpoint}


async def test_attached_volumes_are_block_device_mappings_kept_in_the_domain(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    result = await ref.ask("attach_volume", attach_args(file_volume(), "/dev/vdb"))
    await ref.ask("attach_volume", attach_args(nbd_volume(), "vdc"))

    assert isinstance(result, Instance)
    assert set(driver.domains[UUID].volumes) == {"/dev/vdb", "/dev/vdc"}
    stored = decode_recovery(UUID, driver.domains[UUID].recovery or b"").instance
    mappings = stored.block_device_mappings or BlockDeviceMappingList()
    assert [(m.device_name, m.volume_id) for m in mappings] == [
        ("/dev/vdb", "vol-1"),
        ("/dev/vdc", "vol-2"),
    ]
    assert [set(s) for s in sink.states()] == [{"block_device_mappings"}] * 2

    await ref.ask("detach_volume", attach_args(file_volume(), "/dev/vdb"))
    assert set(driver.domains[UUID].volumes) == {"/dev/vdc"}
    last = sink.states()[-1]["block_device_mappings"]
    assert [m.device_name for m in last] == ["/dev/vdc"]


async def test_a_device_in_use_is_refused_before_the_driver_is_called(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    await ref.ask("attach_volume", attach_args(file_volume(), "/dev/vdb"))
    for mountpoint in ("/dev/vdb", "/dev/vda"):
        with pytest.raises(DeviceInUse) as caught:
            await ref.ask("attach_volume", attach_args(nbd_volume(), mountpoint))
        assert caught.value.device == mountpoint.removeprefix("/dev/")
    assert driver.calls().count("attach_volume") == 1


@pytest.mark.parametrize(
    ("connection", "error"),
    [
        (
            VolumeConnection(driver_volume_type="iscsi", data=VolumeConnectionData()),
            "missing target_portal, target_iqn, target_lun",
        ),
        (file_volume(path="volumes/../../etc/shadow"), "is not a plain absolute path"),
        (nbd_volume(port="-1"), "is not a TCP port"),
    ],
)
async def test_malformed_connection_info_is_refused_with_no_effect(
    ref: ActorRef,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    connection: VolumeConnection,
    error: str,
) -> None:
    with pytest.raises(InvalidConnectionInfo) as caught:
        await ref.ask("attach_volume", attach_args(connection, "/dev/vdb"))
    assert error in str(caught.value)
    assert driver.journal == []
    assert sink.published == []


async def test_a_hostile_mountpoint_is_refused_with_no_effect(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask("attach_volume", attach_args(file_volume(), "vdb'/><disk type='file"))
    assert caught.value.argument == "mountpoint"
    assert driver.journal == []


async def test_detach_of_a_volume_that_is_not_attached_is_refused(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    with pytest.raises(VolumeNotAttached) as caught:
        await ref.ask("detach_volume", attach_args(file_volume(), "/dev/vdd"))
    assert str(caught.value) == f"no volume is attached to instance {UUID} at 'vdd'"
    assert "detach_volume" not in driver.calls()


async def test_an_attach_the_agent_was_stopped_in_is_completed_when_sent_again(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    # libvirt has the disk, the record does not (the agent died between the two).
    driver.domains[UUID].volumes["/dev/vdb"] = file_volume()
    result = await ref.ask("attach_volume", attach_args(file_volume(), "/dev/vdb"))
    assert [m.device_name for m in result.block_device_mappings or []] == ["/dev/vdb"]
    # Another volume at a device libvirt already uses for a different one is refused.
    driver.domains[UUID].volumes["/dev/vdc"] = file_volume()
    with pytest.raises(FakeDriverError, match="in use"):
        await ref.ask("attach_volume", attach_args(nbd_volume(), "/dev/vdc"))


async def test_a_volume_attached_without_a_record_can_be_detached(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    driver.domains[UUID].volumes["/dev/vdb"] = file_volume()
    with pytest.raises(VolumeNotAttached):  # not that volume: nothing is detached
        await ref.ask("detach_volume", attach_args(nbd_volume(), "/dev/vdb"))
    await ref.ask("detach_volume", attach_args(file_volume(), "/dev/vdb"))
    assert driver.domains[UUID].volumes == {}


async def test_a_detach_the_driver_fails_keeps_the_mapping(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    await ref.ask("attach_volume", attach_args(file_volume(), "/dev/vdb"))
    driver.fail_next("detach_volume")
    with pytest.raises(FakeDriverError):
        await ref.ask("detach_volume", attach_args(file_volume(), "/dev/vdb"))
    stored = decode_recovery(UUID, driver.domains[UUID].recovery or b"").instance
    assert [m.device_name for m in stored.block_device_mappings or []] == ["/dev/vdb"]


async def test_swap_volume_moves_the_mapping_to_the_new_volume(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    old, new = file_volume(), file_volume("/var/lib/volumes/vol-9", "vol-9")
    await ref.ask("attach_volume", attach_args(old, "/dev/vdb"))
    swapped = await ref.ask(
        "swap_volume",
        {
            "instance": instance(),
            "old_connection_info": old,
            "new_connection_info": new,
            "mountpoint": "/dev/vdb",
        },
    )
    assert driver.domains[UUID].volumes["/dev/vdb"] == new
    assert [m.volume_id for m in swapped.block_device_mappings] == ["vol-9"]


async def test_volumes_attach_to_a_stopped_guest_but_not_a_suspended_one(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    await ref.ask("suspend", {"instance": instance()})
    with pytest.raises(InstanceInvalidState) as caught:
        await ref.ask("attach_volume", attach_args(file_volume(), "/dev/vdb"))
    assert (caught.value.attr, caught.value.state) == ("vm_state", "suspended")
    await ref.ask("resume", {"instance": instance()})
    await ref.ask("power_off", {"instance": instance(), "timeout": 0})
    await ref.ask("attach_volume", attach_args(file_volume(), "/dev/vdb"))


async def test_interfaces_attach_once_and_detach_by_port_id(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    port = vif()
    attached = await ref.ask("attach_interface", {"instance": instance(), "vif": port})
    assert [v.id for v in attached.network_info] == [port.id]
    with pytest.raises(InterfaceAlreadyAttached):
        await ref.ask("attach_interface", {"instance": instance(), "vif": port})
    assert await ref.ask("macs_for_instance", {"instance": instance()}) == ["fa:16:3e:00:00:01"]

    await ref.ask("detach_interface", {"instance": instance(), "vif": port})
    assert driver.domains[UUID].vifs == {}
    with pytest.raises(InterfaceNotAttached) as caught:
        await ref.ask("detach_interface", {"instance": instance(), "vif": port})
    assert str(caught.value) == f"port {port.id} is not attached to instance {UUID}"
    assert [set(s) for s in sink.states()] == [{"network_info"}, {"network_info"}]


async def test_the_volume_connector_and_default_device_names(ref: ActorRef) -> None:
    connector = await ref.ask("get_volume_connector", {"instance": instance()})
    assert connector.host == "compute-1"
    scsi = ImageMeta(properties=ImageMetaProps(hw_disk_bus="scsi"))
    root = await ref.ask("default_root_device_name", {"instance": instance(), "image_meta": scsi})
    assert root == "/dev/sda"
    unnamed = BlockDeviceMappingList(
        objects=[
            BlockDeviceMapping(
                uuid="00000000-0000-4000-8000-000000000001",
                instance_uuid=UUID,
                source_type="blank",
                destination_type="local",
            )
        ]
    )
    named = await ref.ask(
        "default_device_names_for_instance",
        {"instance": instance(), "root_device_name": "/dev/vda", "block_device_mappings": unnamed},
    )
    assert [m.device_name for m in named] == ["/dev/vdb"]
