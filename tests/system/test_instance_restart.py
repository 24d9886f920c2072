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
from datetime import UTC, datetime
from pathlib import Path

import libvirt
import pytest

from actors.instance.errors import InstanceInvalidState
from actors.instance.recovery import RecoveryRecord, encode_recovery
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    config_for,
    domain_view,
    embedded_agent,
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
