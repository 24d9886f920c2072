"""`running_deployment`: one agent and a conductor on SQLite, on a bus, for an integrator's tests.

    embedded (the default)                      real hosts (opted in)
    InProcessBus ── Agent (libvirt URI)         RabbitMQ, prefix virtactor-test-<hex>
       └─ its own conductor, SQLite file           ├─ Agent (its own connection, libvirt URI)
       └─ the clients' transport                   ├─ Conductor (its own connection, SQLite file)
                                                   └─ the clients' transport (its own connection)

On the embedded bus the agent runs its own conductor (`Agent.conductor`, docs/conductor.md);
over RabbitMQ no agent does, so one is started beside it, as `virtactor conductor` would run.
Both keep their records in `_conductor.sqlite` under the deployment's directory, which also
holds the agent's `instances` and `images` (with one blank qcow2 image, `Deployment.image`).

Over RabbitMQ every exchange and queue is named under a prefix of its own, so runs sharing a
broker never see each other's messages, and all of them are deleted when the deployment ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aio_pika

from agent.client import ComputeClient
from agent.conductor.indirection import BusIndirection
from agent.conductor.service import Conductor, running_conductor
from agent.config import AgentConfig, AgentSection, AmqpSection, GuestSection, LibvirtSection
from agent.service import Agent
from agent.testing.settings import DeploymentSettings
from agent.transport import (
    CONDUCTOR_QUEUE,
    AmqpSettings,
    AmqpTransport,
    InProcessBus,
    Names,
    Transport,
)
from agent.virt import qemu_img
from schemas.objects import ImageMeta, ImageMetaProps

# The one image every deployment has: an empty disk, enough to define and run a guest.
BLANK_IMAGE_ID = "5b0f9a3e-2c71-4d8e-9f64-0a1b2c3d4e5f"
BLANK_IMAGE_MIB = 8


@dataclass(slots=True)
class Deployment:
    """A running agent for `host` and the conductor its records go to, on one bus.

    `transport` is the clients' (the in-process bus itself, or a RabbitMQ connection of the
    clients' own); `client()` makes a `ComputeClient` on it. `image` names the blank image in
    the agent's image directory, for `spawn`. `prefix` is the broker's name prefix (None on
    the in-process bus)."""

    settings: DeploymentSettings
    config: AgentConfig
    agent: Agent
    conductor: Conductor
    transport: Transport
    image: ImageMeta
    prefix: str | None

    @property
    def host(self) -> str:
        return self.config.agent.host

    @property
    def hosts(self) -> list[str]:
        return [self.host]

    def client(
        self,
        *,
        default_timeout: float | None = None,
        is_admin: bool = True,
        roles: Sequence[str] = (),
    ) -> ComputeClient:
        """A new client on the clients' transport; it has nothing to close (the deployment
        owns the transport), but event streams it opens are the caller's to close. Its
        requests are an admin's (the host's methods need one), unless `is_admin=False`:
        then they carry only `roles` (docs/security.md, "Authorisation")."""
        timeout = self.settings.call_timeout if default_timeout is None else default_timeout
        return ComputeClient(
            self.transport, default_timeout=timeout, is_admin=is_admin, roles=roles
        )

    def objects(self, client: ComputeClient) -> BusIndirection:
        """The conductor's objects as `client` reaches them: `with use_indirection(...)`,
        `Instance.get_by_uuid(context, uuid)` reads the record the agent saved."""
        return BusIndirection(client, timeout=self.settings.call_timeout)


class RunningDeployment(Protocol):
    """What the fixtures use of a deployment: this module's own, or a devenv's
    (`agent.testing.devenv`)."""

    @property
    def host(self) -> str: ...

    @property
    def hosts(self) -> list[str]: ...

    @property
    def image(self) -> ImageMeta: ...

    def client(
        self,
        *,
        default_timeout: float | None = None,
        is_admin: bool = True,
        roles: Sequence[str] = (),
    ) -> ComputeClient: ...

    def objects(self, client: ComputeClient) -> BusIndirection: ...


def deployment_config(
    settings: DeploymentSettings, directory: Path, prefix: str | None = None
) -> AgentConfig:
    """The agent's configuration: instances and images under `directory`, full emulation
    (`qemu`, no host CPU model) so a real libvirt needs no KVM, RabbitMQ under `prefix`."""
    return AgentConfig(
        agent=AgentSection(host=settings.host, instances_path=str(directory / "instances")),
        libvirt=LibvirtSection(uri=settings.libvirt_uri),
        guest=GuestSection(
            images_path=str(directory / "images"), virt_type="qemu", cpu_mode="none"
        ),
        amqp=AmqpSection(url=settings.rabbitmq_url or "", prefix=prefix or "virtactor"),
    )


async def make_blank_image(images_path: Path) -> ImageMeta:
    """The blank qcow2 image `BLANK_IMAGE_ID` in `images_path` (created unless it is there
    already), as `spawn` takes it."""
    await asyncio.to_thread(images_path.mkdir, parents=True, exist_ok=True)
    path = images_path / BLANK_IMAGE_ID
    if not await asyncio.to_thread(path.exists):
        await asyncio.to_thread(qemu_img.create_blank, path, BLANK_IMAGE_MIB)
    return ImageMeta(
        id=BLANK_IMAGE_ID, name="blank", disk_format="qcow2", properties=ImageMetaProps()
    )


async def delete_topology(url: str, prefix: str, hosts: list[str]) -> None:
    """Delete the exchanges under `prefix`, and the queues of `hosts` and the dead letters."""
    names = Names(prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in [names.dead_letter_queue, *(names.host_queue(h) for h in hosts)]:
            await channel.queue_delete(queue)
        for exchange in (names.commands, names.broadcast, names.events, names.dead_letter_exchange):
            await channel.exchange_delete(exchange)


async def _started_amqp(stack: contextlib.AsyncExitStack, url: str, prefix: str) -> AmqpTransport:
    transport = AmqpTransport(AmqpSettings(url=url, prefix=prefix))
    await transport.start()
    stack.push_async_callback(transport.aclose)
    return transport


@contextlib.asynccontextmanager
async def running_deployment(
    settings: DeploymentSettings, directory: Path
) -> AsyncIterator[Deployment]:
    """A deployment whose files live under `directory`, serving once this yields: the agent
    adopted the host's guests and answered its first call over the bus.

    On exit the agent stops (requests under way finish), then the conductor, then the bus;
    over RabbitMQ the deployment's exchanges and queues are deleted last. A start that fails
    (no broker, no libvirt, `ready_timeout` passed) stops what was started and raises.
    """
    await asyncio.to_thread((directory / "instances").mkdir, parents=True, exist_ok=True)
    image = await make_blank_image(directory / "images")
    url = settings.rabbitmq_url
    prefix = f"virtactor-test-{uuid.uuid4().hex[:8]}" if url else None
    config = deployment_config(settings, directory, prefix)
    async with contextlib.AsyncExitStack() as stack:
        conductor: Conductor | None = None
        if url and prefix:
            # Registered first so it runs last, once nobody uses the names any more.
            stack.push_async_callback(
                delete_topology, url, prefix, [settings.host, CONDUCTOR_QUEUE]
            )
            conductor_bus = await _started_amqp(stack, url, prefix)
            # Before the agent: its actors save their records from the start.
            conductor = await stack.enter_async_context(
                running_conductor(conductor_bus, config, upgrade=True)
            )
            transport: Transport = await _started_amqp(stack, url, prefix)
            agent = Agent(config)
        else:
            transport = InProcessBus()
            await transport.start()
            stack.push_async_callback(transport.aclose)
            agent = Agent(config, transport=transport)
        await agent.start()
        stack.push_async_callback(agent.aclose)
        await agent.wait_ready(timeout=settings.ready_timeout)
        conductor = conductor or agent.conductor
        assert conductor is not None, "an agent on the in-process bus runs its own conductor"
        deployment = Deployment(settings, config, agent, conductor, transport, image, prefix)
        # Asked of the tracker, whose first audit was queued at adoption: once answered, the
        # audit is done and the agent answers over the bus.
        await deployment.client().get_compute_node(settings.host)
        yield deployment
