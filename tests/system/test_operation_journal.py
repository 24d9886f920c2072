"""The operation journal on a real QEMU guest: operations the agent was stopped in, resolved
by the next agent at start, and the caller's requests sent again under their message ids
answered with the real outcome, nothing run twice, the guest's QEMU never restarted.

The first agent is held at the moment a kill would stop it (tests/agent/embedded.py,
`stopped_while_held`): an attach after libvirt attached the disk and before the record has
it; a pause after the guest paused and before its reply was kept.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import libvirt

from agent.rpc.journal import Verdict
from tests.agent.embedded import stopped_before_its_reply_is_kept, stopped_while_held
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage
from tests.system.instance_helpers import (
    HOST,
    config_for,
    embedded_agent,
    file_volume,
    kernel_image,
    make_guest_files,
    tracked_instance,
)
from tests.system.test_instance_restart import disk_targets, domain_id, domain_state

pytestmark = ON_REAL_QEMU


async def test_an_attach_and_a_pause_the_agent_was_stopped_in_are_answered_as_they_ended(
    test_hosts: tuple[LocalHost, ...],
    qemu_tmp_path: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> None:
    host = test_hosts[0]
    root = await asyncio.to_thread(make_guest_files, qemu_tmp_path, guest_image)
    config = config_for(host, root)
    me = tracked_instance(domain_janitor)
    volume = file_volume(root / "volume.raw", "vol-journal")

    async with embedded_agent(config) as (agent, client):
        await client.spawn(HOST, me, kernel_image(guest_image))
        running = await asyncio.to_thread(domain_id, host.uri, me.uuid)
        attach = client.with_options(message_id="attach-j", timeout=5).attach_volume(
            HOST, me, volume, "/dev/vdb"
        )
        driver = agent.runtime.instance_driver
        await stopped_while_held(agent, "attach-j", attach, driver, "attach_volume", after=True)
    # In libvirt, in no record: what a kill between the two leaves.
    assert await asyncio.to_thread(disk_targets, host.uri, me.uuid) == ["vda", "vdb"]

    async with embedded_agent(config) as (agent, client):
        # Completed forward at start: recorded, not attached twice.
        assert [r.verdict for r in agent.resolved] == [Verdict.RUN_AGAIN]
        attached = await client.with_options(message_id="attach-j").attach_volume(
            HOST, me, volume, "/dev/vdb"
        )
        assert agent.dispatcher.stats.duplicates == 1
        pause = client.with_options(message_id="pause-j", timeout=4).pause(HOST, me)
        await stopped_before_its_reply_is_kept(agent, "pause-j", pause)

    async with embedded_agent(config) as (agent, client):
        assert [r.verdict for r in agent.resolved] == [Verdict.DONE]
        paused = await client.with_options(message_id="pause-j").pause(HOST, me)
        assert agent.dispatcher.stats.duplicates == 1
        state = await asyncio.to_thread(domain_state, host.uri, me.uuid)
        assert await asyncio.to_thread(domain_id, host.uri, me.uuid) == running
        await client.destroy(HOST, me)

    mappings = [(m.device_name, m.volume_id) for m in attached.block_device_mappings or []]
    assert mappings == [("/dev/vdb", "vol-journal")]
    assert (paused.vm_state, paused.power_state) == ("paused", "paused")
    assert state == libvirt.VIR_DOMAIN_PAUSED
