"""The client's retries: an agent still adopting its guests is asked again within the call's
deadline, and a call re-sent under its idempotency key after a timeout gets the first answer.

The adopting agent is a whole agent on libvirt's test driver whose node file does not exist
yet: libvirt cannot be opened, so the host cannot adopt, until the test writes the file.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from actors.instance.errors import InstanceInvalidState
from agent.client import ComputeClient
from agent.errors import AgentInitializing, CallTimeout
from agent.service import Agent
from agent.transport import Transport
from schemas.objects import ImageMeta, Instance
from tests.actors.instance.fakes import UUID, FakeInstanceDriver, image_meta, instance
from tests.agent.embedded import embedded_agent, embedded_config, make_root_image
from tests.agent.serving import serving_instances
from tests.conftest import on_session_loop

HOST = "h1"  # the `transport` fixture deletes this host's queue afterwards

# --- an agent still adopting ------------------------------------------------------------------


@dataclass
class Adopting:
    agent: Agent
    client: ComputeClient
    node_file: Path

    def refusals(self) -> int:
        return self.agent.dispatcher.stats.errors


@asynccontextmanager
async def adopting_agent(tmp_path: Path) -> AsyncIterator[Adopting]:
    await make_root_image(tmp_path)
    node_file = tmp_path / "node.xml"  # written by the test when libvirt may come up
    config = embedded_config(tmp_path, HOST, uri=f"test://{node_file}")
    async with embedded_agent(config, ready_timeout=None) as (agent, client):
        yield Adopting(agent, client, node_file)


@on_session_loop
async def test_a_call_to_an_agent_still_adopting_is_retried_until_it_is_ready(
    tmp_path: Path,
) -> None:
    async with adopting_agent(tmp_path) as adopting:
        me = instance(str(uuid.uuid4()))
        spawn = asyncio.create_task(
            adopting.client.with_options(timeout=30).spawn(HOST, me, image_meta())
        )
        async with asyncio.timeout(10):
            while adopting.refusals() == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert not spawn.done()
        await asyncio.to_thread(adopting.node_file.write_text, "<node/>")
        spawned = await spawn
        assert (spawned.vm_state, spawned.power_state) == ("active", "running")
        assert adopting.agent.runtime.readiness()


@on_session_loop
async def test_an_agent_adopting_past_the_deadline_answers_with_its_last_refusal(
    tmp_path: Path,
) -> None:
    async with adopting_agent(tmp_path) as adopting:
        started = time.monotonic()
        with pytest.raises(AgentInitializing) as caught:
            await adopting.client.with_options(timeout=0.6).pause(HOST, instance(str(uuid.uuid4())))
        elapsed = time.monotonic() - started
        # Let it adopt: an agent closed mid-adoption waits out its host actor's stop timeout.
        await asyncio.to_thread(adopting.node_file.write_text, "<node/>")
        await adopting.agent.wait_ready(timeout=10)
    assert str(caught.value) == f"host {HOST!r} is still adopting its guests; retry shortly"
    assert adopting.refusals() >= 3  # asked again, with a back-off, not once
    assert 0.2 < elapsed < 1.0


@on_session_loop
async def test_a_cast_to_an_agent_still_adopting_waits_and_is_applied_once_it_is_ready(
    tmp_path: Path,
) -> None:
    async with adopting_agent(tmp_path) as adopting:
        me = instance(str(uuid.uuid4()))
        args = {"instance": me, "image_meta": image_meta()}
        await adopting.client.cast(HOST, "spawn", args, instance=me.uuid, ttl=30)
        await asyncio.sleep(0.3)
        assert adopting.agent.dispatcher.stats.requests == 1
        assert not adopting.agent.runtime.readiness()
        await asyncio.to_thread(adopting.node_file.write_text, "<node/>")
        async with asyncio.timeout(10):
            while not await adopting.client.instance_exists(HOST, me.uuid):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert adopting.refusals() == 0  # not refused, not dropped: applied
        await adopting.client.destroy(HOST, me)


@on_session_loop
async def test_a_cast_whose_deadline_passes_while_the_agent_adopts_is_refused_as_expired(
    tmp_path: Path,
) -> None:
    async with adopting_agent(tmp_path) as adopting:
        me = instance(str(uuid.uuid4()))
        args = {"instance": me, "image_meta": image_meta()}
        await adopting.client.cast(HOST, "spawn", args, instance=me.uuid, ttl=0.3)
        async with asyncio.timeout(5):
            while adopting.refusals() == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await asyncio.to_thread(adopting.node_file.write_text, "<node/>")
        await adopting.agent.wait_ready(timeout=10)
        assert not await adopting.client.instance_exists(HOST, me.uuid)


# --- the idempotency key ----------------------------------------------------------------------


@dataclass
class SlowSpawnDriver(FakeInstanceDriver):
    """A spawn that takes until the test releases it: longer than its caller waits."""

    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def spawn(self, *args: Any, **kwargs: Any) -> None:
        await self.release.wait()
        await super().spawn(*args, **kwargs)


@dataclass
class TimedOutSpawn:
    """A spawn sent under an idempotency key whose caller stopped waiting before the (slow)
    driver finished it."""

    client: ComputeClient
    driver: SlowSpawnDriver
    me: Instance
    image: ImageMeta
    key: str

    async def again(self) -> Instance:
        """The same spawn sent again under the same key."""
        return await self.client.with_options(message_id=self.key).spawn(HOST, self.me, self.image)


@asynccontextmanager
async def timed_out_spawn(transport: Transport) -> AsyncIterator[TimedOutSpawn]:
    driver = SlowSpawnDriver()
    me, image, key = instance(), image_meta(), f"spawn-{uuid.uuid4()}"
    async with serving_instances(transport, HOST, driver) as client:
        with pytest.raises(CallTimeout):
            await client.with_options(timeout=0.3, message_id=key).spawn(HOST, me, image)
        yield TimedOutSpawn(client, driver, me, image, key)


async def test_a_spawn_sent_again_under_its_key_after_a_timeout_gets_the_first_answer(
    transport: Transport,
) -> None:
    async with timed_out_spawn(transport) as timed_out:
        timed_out.driver.release.set()
        spawned = await timed_out.again()
        assert (spawned.uuid, spawned.vm_state, spawned.task_state) == (UUID, "active", None)
        assert timed_out.driver.calls().count("spawn") == 1
        # Without the key the same spawn is a new request, refused: the guest exists.
        with pytest.raises(InstanceInvalidState) as again:
            await timed_out.client.spawn(HOST, timed_out.me, timed_out.image)
    assert (again.value.attr, again.value.state) == ("vm_state", "active")
    assert timed_out.driver.calls().count("spawn") == 1


async def test_a_call_sent_again_under_its_key_while_it_runs_waits_for_the_same_answer(
    transport: Transport,
) -> None:
    async with timed_out_spawn(transport) as timed_out:
        second = asyncio.create_task(timed_out.again())
        await asyncio.sleep(0.2)
        assert not second.done()
        timed_out.driver.release.set()
        assert (await second).vm_state == "active"
    assert timed_out.driver.calls().count("spawn") == 1
