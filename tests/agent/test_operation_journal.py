"""The operation journal on the embedded default: an agent stopped after an operation took
effect but before its reply was kept leaves the operation's intent; the next agent resolves
it at start, and the caller's request sent again under the same message id is answered with
the real outcome, never run a second time.

The state a `kill -9` leaves at that moment is made here by holding the first agent's write
of that one reply, then stopping the agent's serving (which cancels the request, as the
kill ends it): the intent was written by the real dispatcher, the effect applied by the
real handler on test:///default, and no reply was kept or sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import libvirt
import pytest

from agent.errors import OperationInterrupted
from agent.rpc.journal import Verdict
from schemas.objects import Instance
from tests.actors.instance.fakes import IMAGE_ID, image_meta, instance
from tests.agent.embedded import (
    TEST_URI,
    domain_removed,
    embedded_agent,
    embedded_config,
    make_root_image,
    stopped_before_its_reply_is_kept,
    stopped_while_held,
)
from tests.conftest import on_session_loop

HOST = "compute-journal"


@asynccontextmanager
async def guest_kept(uuid_: str) -> AsyncIterator[None]:
    """Keep test:///default's state between the two agents (libvirt frees it when its last
    connection closes), and remove the guest `uuid_` at the end."""
    conn = await asyncio.to_thread(libvirt.open, TEST_URI)
    try:
        async with domain_removed(uuid_):
            yield
    finally:
        await asyncio.to_thread(conn.close)


def domain_state(uuid_: str) -> int:
    conn = libvirt.open(TEST_URI)
    try:
        return int(conn.lookupByUUIDString(uuid_).state()[0])
    finally:
        conn.close()


@on_session_loop
async def test_a_pause_the_agent_was_stopped_in_is_answered_paused_when_sent_again(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            pause = client.with_options(message_id="pause-1", timeout=2).pause(HOST, me)
            await stopped_before_its_reply_is_kept(agent, "pause-1", pause)
        assert await asyncio.to_thread(domain_state, me.uuid) == libvirt.VIR_DOMAIN_PAUSED

        async with embedded_agent(config) as (agent, client):
            assert [(r.intent.method, r.verdict) for r in agent.resolved] == [
                ("pause", Verdict.DONE)
            ]
            again = await client.with_options(message_id="pause-1").pause(HOST, me)
            assert agent.dispatcher.stats.duplicates == 1  # answered, not run again
            assert await agent.replies.unfinished() == []
            await client.destroy(HOST, me)
    assert isinstance(again, Instance)
    assert (again.vm_state, again.power_state) == ("paused", "paused")


@on_session_loop
async def test_a_pause_whose_effect_is_not_there_is_run_forward_at_start_once(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            pause = client.with_options(message_id="pause-2", timeout=2).pause(HOST, me)
            # Stopped with the pause shown (task_state pausing) before libvirt was asked.
            await stopped_while_held(
                agent, "pause-2", pause, agent.runtime.instance_driver, "pause"
            )
        assert await asyncio.to_thread(domain_state, me.uuid) == libvirt.VIR_DOMAIN_RUNNING

        async with embedded_agent(config) as (agent, client):
            assert [(r.intent.method, r.verdict) for r in agent.resolved] == [
                ("pause", Verdict.RUN_AGAIN)
            ]
            assert await asyncio.to_thread(domain_state, me.uuid) == libvirt.VIR_DOMAIN_PAUSED
            again = await client.with_options(message_id="pause-2").pause(HOST, me)
            assert agent.dispatcher.stats.duplicates == 1
            await client.destroy(HOST, me)
    assert (again.vm_state, again.power_state) == ("paused", "paused")


@on_session_loop
async def test_a_destroy_whose_reply_was_lost_is_run_again_and_answered_deleted(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            destroy = client.with_options(message_id="destroy-1", timeout=2).destroy(HOST, me)
            await stopped_before_its_reply_is_kept(agent, "destroy-1", destroy)

        async with embedded_agent(config) as (agent, client):
            assert [r.verdict for r in agent.resolved] == [Verdict.RUN_AGAIN]
            again = await client.with_options(message_id="destroy-1").destroy(HOST, me)
            assert agent.dispatcher.stats.duplicates == 1
    assert again.vm_state == "deleted"


@on_session_loop
async def test_a_metadata_change_the_agent_was_stopped_in_is_answered_changed(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    diff = {"role": ["+", "db"]}
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            change = client.with_options(message_id="meta-1", timeout=2).change_instance_metadata(
                HOST, me, diff
            )
            await stopped_before_its_reply_is_kept(agent, "meta-1", change)

        async with embedded_agent(config) as (agent, client):
            assert [r.verdict for r in agent.resolved] == [Verdict.DONE]
            again = await client.with_options(message_id="meta-1").change_instance_metadata(
                HOST, me, diff
            )
            assert agent.dispatcher.stats.duplicates == 1
            await client.destroy(HOST, me)
    assert again.metadata == {"role": "db"}


@on_session_loop
async def test_a_hard_reboot_whose_guest_runs_is_answered_operation_interrupted(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            reboot = client.with_options(message_id="reboot-1", timeout=2).reboot(
                HOST, me, reboot_type="HARD"
            )
            await stopped_before_its_reply_is_kept(agent, "reboot-1", reboot)
        # It rebooted, but a guest that runs says nothing of whether it did.
        assert await asyncio.to_thread(domain_state, me.uuid) == libvirt.VIR_DOMAIN_RUNNING

        async with embedded_agent(config) as (agent, client):
            assert [r.verdict for r in agent.resolved] == [Verdict.INTERRUPTED]
            with pytest.raises(OperationInterrupted) as raised:
                await client.with_options(message_id="reboot-1").reboot(
                    HOST, me, reboot_type="HARD"
                )
            assert agent.dispatcher.stats.duplicates == 1
            await client.destroy(HOST, me)
    assert str(raised.value) == (
        f"reboot 'reboot-1' of instance {me.uuid} was interrupted by an agent restart; "
        "whether it took effect is not known"
    )


@on_session_loop
async def test_a_suspend_whose_managed_save_was_made_is_answered_suspended(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()))
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            suspend = client.with_options(message_id="suspend-1", timeout=2).suspend(HOST, me)
            # Stopped once libvirt made the managed save, before the record said suspended.
            await stopped_while_held(
                agent, "suspend-1", suspend, agent.runtime.instance_driver, "suspend", after=True
            )
        assert await asyncio.to_thread(domain_state, me.uuid) == libvirt.VIR_DOMAIN_SHUTOFF

        async with embedded_agent(config) as (agent, client):
            assert [(r.intent.method, r.verdict) for r in agent.resolved] == [
                ("suspend", Verdict.DONE)
            ]
            again = await client.with_options(message_id="suspend-1").suspend(HOST, me)
            assert agent.dispatcher.stats.duplicates == 1
            resumed = await client.resume(HOST, me)
            await client.destroy(HOST, me)
    assert (again.vm_state, again.power_state) == ("suspended", "shutdown")
    assert (resumed.vm_state, resumed.power_state) == ("active", "running")


@on_session_loop
async def test_a_snapshot_whose_image_was_written_is_answered_with_its_path(
    tmp_path: Path,
) -> None:
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, HOST)
    me = instance(str(uuid.uuid4()), image_ref=IMAGE_ID)  # a root disk to copy
    image_id = str(uuid.uuid4())
    async with guest_kept(me.uuid):
        async with embedded_agent(config) as (agent, client):
            await client.spawn(HOST, me, image_meta())
            snapshot = client.with_options(message_id="snap-1", timeout=2).snapshot(
                HOST, me, image_id
            )
            await stopped_before_its_reply_is_kept(agent, "snap-1", snapshot)

        async with embedded_agent(config) as (agent, client):
            assert [r.verdict for r in agent.resolved] == [Verdict.DONE]
            again = await client.with_options(message_id="snap-1").snapshot(HOST, me, image_id)
            assert agent.dispatcher.stats.duplicates == 1
            await client.destroy(HOST, me)
    images = Path(config.guest.images_path)
    assert again == str(images / f"{image_id}.qcow2")
    left = await asyncio.to_thread(lambda: sorted(p.name for p in images.glob(f"*{image_id}*")))
    assert left == [f"{image_id}.qcow2"]
