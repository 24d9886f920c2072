"""A whole agent on the embedded default (libvirt's test driver and the in-process bus), as the
agent's tests start it, with a guest spawned from a real image, and the clean-up of the
domains it leaves.

`test:///default` is one hypervisor shared by the whole pytest process: a test removes the
domains it made (`domain_removed`) and checks nothing of its own was left for the next.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest

from agent.client import ComputeClient
from agent.config import AgentConfig, AgentSection, GuestSection, LibvirtSection
from agent.errors import CallTimeout
from agent.service import Agent
from agent.transport import InProcessBus
from agent.virt import qemu_img
from schemas.objects import ImageMeta, Instance
from tests.actors.instance.fakes import IMAGE_ID, instance
from tests.agent.virt.helpers import remove_domain_from

TEST_URI = "test:///default"


def embedded_config(tmp_path: Path, host: str, *, uri: str = TEST_URI, **agent: str) -> AgentConfig:
    """An agent `host` on `uri` whose instances and images live under `tmp_path`."""
    (tmp_path / "instances").mkdir(exist_ok=True)
    return AgentConfig(
        agent=AgentSection(host=host, instances_path=str(tmp_path / "instances"), **agent),
        libvirt=LibvirtSection(uri=uri),
        guest=GuestSection(images_path=str(tmp_path / "images"), virt_type="qemu", cpu_mode="none"),
    )


async def make_root_image(tmp_path: Path) -> None:
    """images/IMAGE_ID under `tmp_path`: the 8 MiB qcow2 the sample instances boot from."""
    images = tmp_path / "images"
    images.mkdir()
    await asyncio.to_thread(
        qemu_img.run, ["create", "-q", "-f", "qcow2", str(images / IMAGE_ID), "8M"]
    )


@asynccontextmanager
async def embedded_agent(
    config: AgentConfig,
    *,
    ready_timeout: float | None = 30,
    call_timeout: float = 30,
) -> AsyncIterator[tuple[Agent, ComputeClient]]:
    """An agent on its own in-process bus and a client on that bus; the agent has adopted
    its guests unless `ready_timeout` is None. Both are closed on exit."""
    bus = InProcessBus()
    await bus.start()
    agent = Agent(config, transport=bus)
    await agent.start()
    try:
        if ready_timeout is not None:
            await agent.wait_ready(timeout=ready_timeout)
        yield agent, ComputeClient(bus, default_timeout=call_timeout, is_admin=True)
    finally:
        await agent.aclose()
        await bus.aclose()


def remove_test_domain(domain_uuid: str) -> list[str]:
    """Remove domain `domain_uuid` from test:///default; returns the uuids left there."""
    conn = libvirt.open(TEST_URI)
    try:
        remove_domain_from(conn, domain_uuid)
        return [d.UUIDString() for d in conn.listAllDomains(0)]
    finally:
        conn.close()


@asynccontextmanager
async def domain_removed(domain_uuid: str) -> AsyncIterator[None]:
    """On exit, domain `domain_uuid` is removed from test:///default, and must be gone."""
    try:
        yield
    finally:
        left = await asyncio.to_thread(remove_test_domain, domain_uuid)
    assert domain_uuid not in left


@dataclass
class EmbeddedGuest:
    client: ComputeClient
    config: AgentConfig
    guest: Instance
    spawned: Instance  # what spawn answered


@asynccontextmanager
async def embedded_guest(
    tmp_path: Path, host: str, image: ImageMeta
) -> AsyncIterator[EmbeddedGuest]:
    """An agent `host` on the embedded default running a new guest spawned from `image`
    over the bus; the guest is removed from test:///default after the agent stopped."""
    await make_root_image(tmp_path)
    config = embedded_config(tmp_path, host)
    guest = instance(str(uuid.uuid4()))
    async with domain_removed(guest.uuid), embedded_agent(config) as (_agent, client):
        spawned = await client.spawn(host, guest, image)
        yield EmbeddedGuest(client, config, guest, spawned)


async def stopped_while_held(
    agent: Agent,
    message_id: str,
    call: Awaitable[Any],
    held: object,
    method: str,
    *,
    after: bool = False,
) -> None:
    """Run `call` (sent under `message_id`) until it reaches `held.method` (for that message
    id, when its first argument has one), hold it there (`after`: once the real method
    returned) and stop serving and the actors, as an agent killed at that moment would
    stop: the request cancelled, nothing more written. Its intent must be left."""
    real = getattr(held, method)

    async def hold(*args: Any, **kwargs: Any) -> Any:
        ours = getattr(args[0], "message_id", message_id) == message_id
        result = await real(*args, **kwargs) if after else None
        if ours:
            await asyncio.Event().wait()
        return result if after else await real(*args, **kwargs)

    setattr(held, method, hold)
    with pytest.raises(CallTimeout):
        await call
    assert [i.message_id for i in await agent.replies.unfinished()] == [message_id]
    await agent.transport.unserve(agent.host, 0.1)  # cancels the held request
    await agent.system.aclose(0.1)  # and a handler held in an actor


async def stopped_before_its_reply_is_kept(
    agent: Agent, message_id: str, call: Awaitable[Any]
) -> None:
    """The handler of `call` ran to its end; the agent stops before its reply is kept."""
    await stopped_while_held(agent, message_id, call, agent.replies, "put")
