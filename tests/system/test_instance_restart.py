"""Instance actors rebuilt from libvirt alone across agent restarts, on a real QEMU host.

One guest outlives four agents (embedded bus; the transport plays no part in recovery):
1. the first spawns it and changes its metadata;
2. the second rebuilds the record from the domain's <metadata> (states, metadata, launch
   time) and keeps refusing what the state forbids; it leaves behind a record of a reboot
   "in progress" long ago, as an agent that died mid-reboot would;
3. the third finishes that reboot with `poll_rebooting_instances`;
4. after the guest went down while no agent ran (a host reboot, as far as it can tell),
   the fourth brings it back with `resume_state_on_host_boot`, powers it off and on and off,
   and removes it with `cleanup`.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import libvirt
import pytest

from actors.instance.errors import InstanceInvalidState
from actors.instance.recovery import RecoveryRecord, encode_recovery
from agent.virt.guest.elements import to_xml
from agent.virt.guest.errors import GuestConfigError
from agent.virt.volumes import volume_disk_element
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    config_for,
    domain_view,
    embedded_agent,
    file_volume,
    kernel_image,
    make_guest_files,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def stop_guest_outside_the_agent(uri: str, uuid: str) -> None:
    """Power the domain off behind every agent's back (it stays defined)."""
    conn = libvirt.open(uri)
    try:
        conn.lookupByUUIDString(uuid).destroy()
    finally:
        conn.close()


def domain_state(uri: str, uuid: str) -> int:
    conn = libvirt.open(uri)
    try:
        return int(conn.lookupByUUIDString(uuid).state()[0])
    finally:
        conn.close()


async def test_an_instance_is_rebuilt_from_libvirt_alone_after_each_agent_restart(
    test_hosts: tuple[LocalHost, ...],
    qemu_tmp_path: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> None:
    host = test_hosts[0]
    root = make_guest_files(qemu_tmp_path, guest_image)
    config = config_for(host, root)
    me = tracked_instance(domain_janitor)
    image = kernel_image(guest_image)

    async with embedded_agent(config) as (_agent, client):
        spawned = await client.spawn(HOST, me, image)
        await client.change_instance_metadata(HOST, me, {"role": ["+", "db"]})

    async with embedded_agent(config) as (agent, client):
        rebuilt = await client.change_instance_metadata(HOST, me, {})
        assert (rebuilt.vm_state, rebuilt.task_state, rebuilt.power_state) == (
            "active",
            None,
            "running",
        )
        assert rebuilt.metadata == {"role": "db"}
        assert rebuilt.launched_at == spawned.launched_at
        assert (rebuilt.flavor.flavorid, rebuilt.flavor.memory_mb) == ("tiny", 128)
        with pytest.raises(InstanceInvalidState):
            await client.unpause(HOST, me)
        # What an agent that died in the middle of a reboot, long ago, left in the domain.
        interrupted = rebuilt.obj_clone()
        interrupted.task_state, interrupted.updated_at = "rebooting", LONG_AGO
        driver = agent.runtime.instance_driver
        assert driver is not None
        await driver.store_recovery(me.uuid, encode_recovery(RecoveryRecord(interrupted, image)))

    async with embedded_agent(config) as (_agent, client):
        with pytest.raises(InstanceInvalidState) as busy:
            await client.pause(HOST, me)
        assert (busy.value.attr, busy.value.state) == ("task_state", "rebooting")
        assert await client.poll_rebooting_instances(HOST, me.uuid, 60) is True
        assert await client.poll_rebooting_instances(HOST, me.uuid, 60) is False
        paused = await client.pause(HOST, me)
        assert (paused.vm_state, paused.task_state) == ("paused", None)
        await client.unpause(HOST, me)

    await asyncio.to_thread(stop_guest_outside_the_agent, host.uri, me.uuid)

    async with embedded_agent(config) as (_agent, client):
        # Found down after the restart: still active, as intended, until brought back.
        back = await client.resume_state_on_host_boot(HOST, me)
        assert (back.vm_state, back.power_state) == ("active", "running")
        assert await asyncio.to_thread(domain_state, host.uri, me.uuid) == (
            libvirt.VIR_DOMAIN_RUNNING
        )
        with pytest.raises(InstanceInvalidState) as running:
            await client.cleanup(HOST, me)
        assert (running.value.attr, running.value.state) == ("power_state", "running")
        stopped = await client.power_off(HOST, me, timeout=0)
        assert (stopped.vm_state, stopped.power_state) == ("stopped", "shutdown")
        started = await client.power_on(HOST, me)
        assert (started.vm_state, started.power_state) == ("active", "running")
        await client.power_off(HOST, me, timeout=0)
        await client.cleanup(HOST, me, destroy_disks=True)

    assert me.uuid not in await asyncio.to_thread(domain_view, host.uri)
    assert not (root / "instances" / me.uuid).exists()


def attach_behind_the_agent(uri: str, uuid: str, xml: str) -> None:
    """Attach a disk as an agent killed right after libvirt's attach leaves it: in libvirt
    (live and persistent), in no record."""
    conn = libvirt.open(uri)
    try:
        flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
        conn.lookupByUUIDString(uuid).attachDeviceFlags(xml, flags)
    finally:
        conn.close()


def disk_targets(uri: str, uuid: str) -> list[str]:
    conn = libvirt.open(uri)
    try:
        config = ET.fromstring(conn.lookupByUUIDString(uuid).XMLDesc(0))
    finally:
        conn.close()
    return [t.get("dev", "") for t in config.iterfind("devices/disk/target")]


def domain_id(uri: str, uuid: str) -> int:
    conn = libvirt.open(uri)
    try:
        return int(conn.lookupByUUIDString(uuid).ID())
    finally:
        conn.close()


async def test_an_attach_cut_short_between_libvirt_and_the_record_is_completed_and_detachable(
    test_hosts: tuple[LocalHost, ...],
    qemu_tmp_path: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> None:
    host = test_hosts[0]
    root = make_guest_files(qemu_tmp_path, guest_image)
    config = config_for(host, root)
    me = tracked_instance(domain_janitor)
    volume = file_volume(root / "volume.raw", "vol-cut")
    other = file_volume(root / "other.raw", "vol-other")
    third = file_volume(root / "third.raw", "vol-third")
    async with embedded_agent(config) as (_agent, client):
        await client.spawn(HOST, me, kernel_image(guest_image))
        running = await asyncio.to_thread(domain_id, host.uri, me.uuid)
        for connection, target in ((volume, "vdb"), (other, "vdc")):
            xml = to_xml(volume_disk_element(connection, target, "virtio"))
            await asyncio.to_thread(attach_behind_the_agent, host.uri, me.uuid, xml)

        # Sent again by the caller that never heard back: completed, and recorded.
        attached = await client.attach_volume(HOST, me, volume, "/dev/vdb")
        mappings = attached.block_device_mappings or []
        assert [(m.device_name, m.volume_id) for m in mappings] == [("/dev/vdb", "vol-cut")]
        # Another volume where libvirt has a different one: refused, nothing changed.
        with pytest.raises(GuestConfigError, match="already attached"):
            await client.attach_volume(HOST, me, third, "/dev/vdc")
        # The unrecorded volume is detached when named with its own connection.
        await client.detach_volume(HOST, me, other, "/dev/vdc")
        detached = await client.detach_volume(HOST, me, volume, "/dev/vdb")
        assert list(detached.block_device_mappings or []) == []
        assert await asyncio.to_thread(disk_targets, host.uri, me.uuid) == ["vda"]
        assert await asyncio.to_thread(domain_id, host.uri, me.uuid) == running
        await client.destroy(HOST, me)
