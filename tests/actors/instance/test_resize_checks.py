"""The pure rules of a resize: refusals before the guest is touched, the disk info both ways,
the record on the destination, and which source steps a recorded task allows."""

from __future__ import annotations

import json

import pytest

from actors.instance.errors import InstanceInvalidState
from actors.instance.resize_checks import (
    GIB,
    BadArgument,
    MovedDisk,
    check_flavor,
    check_no_shrink,
    check_root_fits,
    disk_info_json,
    parse_disk_info,
    resized_instance,
)
from actors.instance.states import check_allowed, check_resize_step, reconcile_recovered
from actors.migration.errors import ResizeRefused
from schemas.objects import Flavor, Instance

UUID = "aaaaaaaa-0000-4000-8000-000000000001"


def flavor(root_gb: int = 1, ephemeral_gb: int = 0, memory_mb: int = 128) -> Flavor:
    return Flavor(
        flavorid="f",
        name="f",
        memory_mb=memory_mb,
        vcpus=1,
        root_gb=root_gb,
        ephemeral_gb=ephemeral_gb,
    )


def test_a_smaller_root_disk_is_refused_naming_both_sizes() -> None:
    with pytest.raises(ResizeRefused, match="root disk cannot shrink from 2 GiB to 1 GiB"):
        check_no_shrink(UUID, flavor(root_gb=2), flavor(root_gb=1))


def test_a_smaller_ephemeral_disk_is_refused() -> None:
    with pytest.raises(ResizeRefused, match="ephemeral disk cannot shrink from 2 GiB to 0 GiB"):
        check_no_shrink(UUID, flavor(ephemeral_gb=2), flavor(ephemeral_gb=0))


def test_same_or_bigger_disks_pass_and_a_root_of_the_images_size_may_get_one() -> None:
    check_no_shrink(UUID, flavor(root_gb=1), flavor(root_gb=1))
    check_no_shrink(UUID, flavor(root_gb=1), flavor(root_gb=3, ephemeral_gb=1))
    check_no_shrink(UUID, flavor(root_gb=0), flavor(root_gb=1))


def test_a_root_disk_bigger_than_the_new_flavor_is_refused() -> None:
    with pytest.raises(ResizeRefused, match=r"root disk \(2147483648 bytes\) is larger"):
        check_root_fits(UUID, 2 * GIB, flavor(root_gb=1))
    check_root_fits(UUID, GIB, flavor(root_gb=1))
    check_root_fits(UUID, 5 * GIB, flavor(root_gb=0))


def test_a_flavor_without_sizes_or_with_no_memory_is_a_bad_argument() -> None:
    with pytest.raises(BadArgument, match="its vcpus is unset") as unset:
        check_flavor(Flavor(flavorid="f", name="f", memory_mb=1, root_gb=1))
    assert unset.value.argument == "flavor"
    with pytest.raises(BadArgument, match="needs 1 vCPU and 1 MiB at least, got 1 and 0"):
        check_flavor(flavor(memory_mb=0))
    with pytest.raises(BadArgument, match="a disk size is negative"):
        check_flavor(flavor(root_gb=-1))


def test_disk_info_reads_back_the_files_and_sizes_it_lists() -> None:
    entries = [
        {"path": f"/srv/instances/{UUID}/disk", "virt_disk_size": GIB, "type": "qcow2"},
        {"path": f"/srv/instances/{UUID}/disk.eph0", "virt_disk_size": 0, "type": "qcow2"},
    ]
    text = disk_info_json(entries)  # type: ignore[arg-type]
    assert json.loads(text) == entries
    assert parse_disk_info(text) == [MovedDisk("disk", GIB), MovedDisk("disk.eph0", 0)]
    assert parse_disk_info("[]") == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "it is not JSON"),
        ('{"path": "disk"}', "it is not a list of disks"),
        ('[{"type": "qcow2"}]', "a disk has no path"),
        ('[{"path": "/x/../"}]', "does not end in a file name"),
        ('[{"path": "/x/.hidden"}]', "does not end in a file name"),
        ('[{"path": "/x/disk", "virt_disk_size": -1}]', "the size of disk is not a byte count"),
        ('[{"path": "/x/disk", "virt_disk_size": true}]', "the size of disk is not a byte count"),
        ('[{"path": "/x/disk"}, {"path": "/y/disk"}]', "a file is listed twice"),
    ],
)
def test_malformed_disk_info_is_a_bad_argument_saying_why(text: str, reason: str) -> None:
    with pytest.raises(BadArgument, match=reason) as refused:
        parse_disk_info(text)
    assert refused.value.argument == "disk_info"


def test_the_destinations_record_has_the_new_flavors_sizes_and_no_task() -> None:
    before = Instance(
        uuid=UUID,
        name="i",
        vm_state="active",
        task_state="resize_migrated",
        host="src",
        node="src",
        flavor=flavor(root_gb=2, ephemeral_gb=1, memory_mb=256),
        memory_mb=128,
        vcpus=1,
        root_gb=1,
    )
    moved = resized_instance(before, "dst")
    assert (moved.host, moved.node, moved.vm_state, moved.task_state) == (
        "dst",
        "dst",
        "resized",
        None,
    )
    assert (moved.memory_mb, moved.root_gb, moved.ephemeral_gb) == (256, 2, 1)
    assert (before.host, before.memory_mb) == ("src", 128)  # a copy


def test_a_resize_starts_from_active_or_stopped_and_shows_resize_migrating() -> None:
    op = check_allowed("migrate_disk_and_power_off", UUID, "active", None, "running")
    assert (op.task_state, op.done) == ("resize_migrating", None)
    check_allowed("migrate_disk_and_power_off", UUID, "stopped", None, "shutdown")
    with pytest.raises(InstanceInvalidState, match="while vm_state is 'paused'"):
        check_allowed("migrate_disk_and_power_off", UUID, "paused", None, "paused")


def test_confirm_and_revert_need_the_task_the_departure_left() -> None:
    check_resize_step("confirm_migration", UUID, "resize_migrated")
    check_resize_step("finish_revert_migration", UUID, "resize_migrated")
    with pytest.raises(
        InstanceInvalidState, match=r"cannot confirm_migration .* task_state is None"
    ):
        check_resize_step("confirm_migration", UUID, None)


def test_a_source_waiting_for_confirm_keeps_its_task_after_an_agent_restart() -> None:
    settled = reconcile_recovered("active", "resize_migrated", "shutdown")
    assert (settled.vm_state, settled.task_state) == ("active", "resize_migrated")
