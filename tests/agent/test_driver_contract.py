"""The rest of the ComputeDriver contract over the bus, on the embedded default (libvirt's test
driver): host stats and CPU stats, adoption run again, the image cache (asked, and on its
own), disk info, device names, the crash-dump NMI, a snapshot's leftovers, the binding host,
and every refusal typed `NotSupported` with its reason.

One agent and one guest for the module; each test leaves the guest running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors.host_contract import REFUSALS as HOST_REFUSALS
from actors.instance.contract import REFUSALS as INSTANCE_REFUSALS
from actors.instance.errors import (
    DeviceInUse,
    InstanceInvalidState,
    InvalidHostArgument,
    InvalidInstanceArgument,
    NotSupported,
)
from agent.virt import qemu_img
from schemas.objects import BlockDeviceMapping, BlockDeviceMappingList
from tests.actors.actors_for_tests import eventually
from tests.actors.instance.fakes import IMAGE_ID, image_meta, instance
from tests.agent.embedded import (
    TEST_URI,
    EmbeddedGuest,
    domain_removed,
    embedded_agent,
    embedded_config,
    make_root_image,
)
from tests.conftest import ON_SESSION_LOOP

HOST = "compute-contract"
DAY = 24 * 3600.0

pytestmark = ON_SESSION_LOOP


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedGuest]:
    """A running guest with a root disk: a qcow2 overlay on the cached base of IMAGE_ID."""
    tmp_path = tmp_path_factory.mktemp("contract")
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    guest = instance(str(uuid.uuid4()), name="contract-guest", image_ref=IMAGE_ID)
    async with domain_removed(guest.uuid), embedded_agent(config) as (_agent, client):
        spawned = await client.spawn(HOST, guest, image_meta())
        yield EmbeddedGuest(client, config, guest, spawned)


def _root(embedded: EmbeddedGuest) -> Path:
    return Path(embedded.config.agent.instances_path) / embedded.guest.uuid / "disk"


def _cache(embedded: EmbeddedGuest) -> Path:
    return Path(embedded.config.agent.instances_path) / "_base"


def _libvirt_frequency() -> int:
    conn = libvirt.open(TEST_URI)
    try:
        return int(conn.getInfo()[3])
    finally:
        conn.close()


# --- the host ------------------------------------------------------------------------------


async def test_init_host_adopts_every_domain_again_and_names_them(embedded: EmbeddedGuest) -> None:
    adopted = await embedded.client.init_host(HOST)

    assert embedded.guest.uuid in adopted
    assert adopted == sorted(adopted) == await embedded.client.list_instance_uuids(HOST)
    assert (await embedded.client.get_info(HOST, embedded.guest)).state == "running"


async def test_get_num_instances_counts_every_domain(embedded: EmbeddedGuest) -> None:
    count = await embedded.client.get_num_instances(HOST)

    assert count == len(await embedded.client.list_instance_uuids(HOST))
    assert count >= 1


async def test_get_host_stats_is_novas_dictionary_of_the_audited_node(
    embedded: EmbeddedGuest,
) -> None:
    stats = await embedded.client.get_host_stats(HOST)
    node = await embedded.client.get_available_resource(HOST, HOST)

    assert stats["vcpus"] == node.vcpus > 0
    assert stats["memory_mb"] == node.memory_mb > 0
    assert stats["local_gb"] == node.local_gb
    assert stats["hypervisor_type"] == node.hypervisor_type
    assert stats["hypervisor_hostname"] == node.hypervisor_hostname
    assert stats["supported_instances"] == node.supported_instances
    assert stats["host_ip"] == embedded.config.agent.host_ip
    assert stats["num_instances"] == await embedded.client.get_num_instances(HOST)


async def test_get_host_cpu_stats_has_libvirts_cpu_times_and_frequency(
    embedded: EmbeddedGuest,
) -> None:
    stats = await embedded.client.get_host_cpu_stats(HOST)

    assert set(stats) == {"kernel", "idle", "user", "iowait", "frequency"}
    assert all(isinstance(v, int) and v >= 0 for v in stats.values())
    assert stats["frequency"] == _libvirt_frequency()


async def test_legacy_nwinfo_is_false(embedded: EmbeddedGuest) -> None:
    assert await embedded.client.legacy_nwinfo(HOST) is False


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("get_console_pool_info", {"console_type": "vnc"}),
        ("host_power_action", {"action": "reboot"}),
        ("add_to_aggregate", {"host": HOST, "aggregate": {"name": "fast"}}),
        ("remove_from_aggregate", {"host": HOST, "aggregate": {"name": "fast"}}),
        ("undo_aggregate_operation", {"host": HOST, "op": "add", "aggregate": {}}),
        ("register_event_listener", {}),
        ("emit_event", {}),
    ],
)
async def test_a_host_method_this_hypervisor_does_not_do_is_refused_with_its_reason(
    embedded: EmbeddedGuest, method: str, args: dict[str, object]
) -> None:
    with pytest.raises(NotSupported) as caught:
        await embedded.client.call(HOST, method, args)

    assert (caught.value.operation, caught.value.reason) == (method, HOST_REFUSALS[method])
    assert str(caught.value) == f"{method} is not supported: {HOST_REFUSALS[method]}"


async def test_host_power_action_refuses_an_unknown_action_by_name(embedded: EmbeddedGuest) -> None:
    with pytest.raises(InvalidHostArgument) as caught:
        await embedded.client.host_power_action(HOST, "dance")

    assert str(caught.value) == (
        "invalid action for host_power_action: 'dance' is not one of "
        "('reboot', 'shutdown', 'startup')"
    )


# --- the image cache -----------------------------------------------------------------------


def _stale_base(cache: Path, name: str) -> Path:
    """A cached base nobody references, last used two days ago."""
    base = cache / name
    base.write_bytes(b"\0" * 512)
    old = time.time() - 2 * DAY
    os.utime(base, (old, old))
    return base


async def test_manage_image_cache_keeps_the_guests_base_and_drops_what_is_gone(
    embedded: EmbeddedGuest,
) -> None:
    cache = _cache(embedded)
    gone = str(uuid.uuid4())
    (cache / f"{IMAGE_ID}.refs" / gone).touch()
    stale = _stale_base(cache, "stale-image")

    report = await embedded.client.manage_image_cache(HOST)

    assert IMAGE_ID in report["in_use"]
    assert [IMAGE_ID, gone] in report["dropped_references"]
    assert report["removed"] == ["stale-image"]
    assert not stale.exists() and not (cache / f"{IMAGE_ID}.refs" / gone).exists()
    assert (cache / IMAGE_ID).exists()
    assert (cache / f"{IMAGE_ID}.refs" / embedded.guest.uuid).exists()


async def test_manage_image_cache_keeps_the_references_of_instances_the_caller_names(
    embedded: EmbeddedGuest,
) -> None:
    cache = _cache(embedded)
    elsewhere = str(uuid.uuid4())
    (cache / f"{IMAGE_ID}.refs" / elsewhere).touch()
    try:
        report = await embedded.client.manage_image_cache(HOST, [elsewhere])

        assert report["dropped_references"] == []
        assert (cache / f"{IMAGE_ID}.refs" / elsewhere).exists()
    finally:
        (cache / f"{IMAGE_ID}.refs" / elsewhere).unlink()


async def test_manage_image_cache_keeps_the_references_of_instances_with_a_directory_here(
    embedded: EmbeddedGuest,
) -> None:
    # Another host's instance, on an instances path (and so a cache) the hosts share.
    cache, other = _cache(embedded), str(uuid.uuid4())
    directory = Path(embedded.config.agent.instances_path) / other
    directory.mkdir()
    (cache / f"{IMAGE_ID}.refs" / other).touch()
    try:
        report = await embedded.client.manage_image_cache(HOST)

        assert report["dropped_references"] == []
        assert (cache / f"{IMAGE_ID}.refs" / other).exists()
    finally:
        (cache / f"{IMAGE_ID}.refs" / other).unlink()
        directory.rmdir()


async def test_manage_image_cache_refuses_an_empty_uuid(embedded: EmbeddedGuest) -> None:
    with pytest.raises(InvalidHostArgument) as caught:
        await embedded.client.manage_image_cache(HOST, [""])

    assert str(caught.value) == (
        "invalid all_instances for manage_image_cache: '' is not an instance uuid"
    )


async def test_the_host_cleans_its_image_cache_every_image_cache_interval(tmp_path: Path) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, "compute-cache-ticker")
    config = dataclasses.replace(
        config, guest=dataclasses.replace(config.guest, image_cache_interval=0.2)
    )
    cache = Path(config.agent.instances_path) / "_base"
    cache.mkdir(parents=True)
    stale = _stale_base(cache, "stale-image")
    async with embedded_agent(config):
        await eventually(lambda: not stale.exists(), within=10)
    assert list(cache.iterdir()) == [cache / ".locks"]


# --- an instance's disks and device names ----------------------------------------------------


async def test_instance_on_disk_is_true_for_a_guest_here_and_false_for_one_elsewhere(
    embedded: EmbeddedGuest,
) -> None:
    assert await embedded.client.instance_on_disk(HOST, embedded.guest) is True
    assert await embedded.client.instance_on_disk(HOST, instance(str(uuid.uuid4()))) is False


async def test_get_instance_disk_info_describes_the_root_overlay_as_qemu_img_does(
    embedded: EmbeddedGuest,
) -> None:
    root = _root(embedded)

    disks = json.loads(await embedded.client.get_instance_disk_info(HOST, embedded.guest))

    probed = await asyncio.to_thread(qemu_img.info, root)
    allocated = root.stat().st_blocks * 512
    assert disks == [
        {
            "type": "qcow2",
            "path": str(root),
            "virt_disk_size": probed.virtual_size,
            "backing_file": IMAGE_ID,
            "disk_size": allocated,
            "over_committed_disk_size": probed.virtual_size - allocated,
        }
    ]


async def test_get_device_name_for_instance_is_the_next_free_name_on_the_bus(
    embedded: EmbeddedGuest,
) -> None:
    client, guest = embedded.client, embedded.guest

    assert await client.get_device_name_for_instance(HOST, guest) == "/dev/vdb"
    taken = BlockDeviceMappingList(objects=[BlockDeviceMapping(device_name="/dev/vdb")])
    assert await client.get_device_name_for_instance(HOST, guest, taken) == "/dev/vdc"
    scsi = BlockDeviceMapping(disk_bus="scsi")
    assert await client.get_device_name_for_instance(HOST, guest, None, scsi) == "/dev/sda"


async def test_get_device_name_for_instance_refuses_a_name_the_guest_uses(
    embedded: EmbeddedGuest,
) -> None:
    root = BlockDeviceMapping(device_name="/dev/vda")
    with pytest.raises(DeviceInUse) as caught:
        await embedded.client.get_device_name_for_instance(HOST, embedded.guest, None, root)

    assert (caught.value.uuid, caught.value.device) == (embedded.guest.uuid, "vda")


# --- the guest -------------------------------------------------------------------------------


async def test_trigger_crash_dump_is_sent_to_a_running_guest_only(embedded: EmbeddedGuest) -> None:
    client, guest = embedded.client, embedded.guest
    await client.trigger_crash_dump(HOST, guest)
    assert (await client.get_info(HOST, guest)).state == "running"

    await client.power_off(HOST, guest)
    try:
        with pytest.raises(InstanceInvalidState) as caught:
            await client.trigger_crash_dump(HOST, guest)
        assert str(caught.value) == (
            f"cannot trigger_crash_dump instance {guest.uuid} while power_state is 'shutdown'"
        )
    finally:
        await client.power_on(HOST, guest)


async def test_post_interrupted_snapshot_cleanup_removes_that_snapshots_partial_files(
    embedded: EmbeddedGuest,
) -> None:
    snapshots = Path(embedded.config.guest.images_path)
    image_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    partial = snapshots / f".{image_id}.qcow2.part-0badc0de"
    someone_elses = snapshots / f".{other}.qcow2.part-12345678"
    partial.write_bytes(b"half")
    someone_elses.write_bytes(b"half")
    try:
        removed = await embedded.client.post_interrupted_snapshot_cleanup(
            HOST, embedded.guest, image_id
        )
        again = await embedded.client.post_interrupted_snapshot_cleanup(
            HOST, embedded.guest, image_id
        )
        assert (removed, again) == ([str(partial)], [])
        assert not partial.exists() and someone_elses.exists()
    finally:
        someone_elses.unlink()


async def test_post_interrupted_snapshot_cleanup_refuses_an_image_id_that_is_no_uuid(
    embedded: EmbeddedGuest,
) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await embedded.client.post_interrupted_snapshot_cleanup(HOST, embedded.guest, "../x")

    assert caught.value.argument == "image_id"


async def test_get_instance_diagnostics_is_get_diagnostics_under_novas_later_name(
    embedded: EmbeddedGuest,
) -> None:
    later = await embedded.client.get_instance_diagnostics(HOST, embedded.guest)
    earlier = await embedded.client.get_diagnostics(HOST, embedded.guest)

    assert (later.state, later.driver, later.num_disks) == (
        earlier.state,
        earlier.driver,
        earlier.num_disks,
    )
    assert later.state == "running"


async def test_network_binding_host_id_is_the_instances_host_or_this_agents(
    embedded: EmbeddedGuest,
) -> None:
    guest = embedded.guest
    assert await embedded.client.network_binding_host_id(HOST, guest) == HOST

    elsewhere = guest.obj_clone()
    elsewhere.host = "compute-other"
    assert await embedded.client.network_binding_host_id(HOST, elsewhere) == "compute-other"


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("get_rdp_console", {}),
        ("get_mks_console", {}),
        ("set_bootable", {"is_bootable": True}),
        ("pre_block_migration", {}),
    ],
)
async def test_an_instance_method_this_hypervisor_does_not_do_is_refused_with_its_reason(
    embedded: EmbeddedGuest, method: str, args: dict[str, object]
) -> None:
    guest = embedded.guest
    with pytest.raises(NotSupported) as caught:
        await embedded.client.call(HOST, method, {"instance": guest, **args}, instance=guest.uuid)

    assert (caught.value.operation, caught.value.reason) == (method, INSTANCE_REFUSALS[method])


async def test_a_refusal_names_the_instance_it_was_asked_of_first(embedded: EmbeddedGuest) -> None:
    other = instance(str(uuid.uuid4()))
    async with domain_removed(other.uuid):
        with pytest.raises(InvalidInstanceArgument) as caught:
            await embedded.client.call(
                HOST, "get_rdp_console", {"instance": other}, instance=embedded.guest.uuid
            )

    assert caught.value.reason == f"it names instance {other.uuid}"
