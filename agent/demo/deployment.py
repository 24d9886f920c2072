"""The demo's deployment: a conductor on SQLite and two agents ("demo-a", "demo-b"), each on
one hypervisor host, on one bus (the in-process one, or RabbitMQ), and a client on it.

Everything started is in the ledger, and stopped again when the block ends, however it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from agent.client import ComputeClient
from agent.conductor.service import running_conductor
from agent.config import (
    AgentConfig,
    AgentSection,
    AmqpSection,
    ConductorSection,
    GuestSection,
    LibvirtSection,
    MigrationSection,
)
from agent.demo.hosts import DemoHost
from agent.demo.ledger import Entry, Ledger
from agent.service import Agent, build_transport
from agent.transport import InProcessBus, Transport
from agent.transport.base import RequestHandler, Subscription
from agent.transport.topics import Names

AGENTS = ("demo-a", "demo-b")
CALL_TIMEOUT = 60.0
# A destination that does not answer fails a migration step within 15 s; the job is polled
# often enough for a progress bar.
MIGRATION = MigrationSection(poll_interval=0.2, peer_timeout=15.0, busy_retry_interval=1.0)


@dataclass(slots=True)
class Deployment:
    client: ComputeClient
    agents: dict[str, Agent]
    hosts: dict[str, DemoHost]  # agent name -> the host it serves


class SharedBus(Transport):
    """One in-process bus as seen by one of several agents on it.

    An agent handed an `InProcessBus` runs a conductor of its own on it, and a bus takes one
    server per queue: agents that share a bus, and the one conductor the demo runs on it,
    each get this view instead. Every call goes to the bus; closing the view leaves it open.
    """

    def __init__(self, bus: InProcessBus) -> None:
        self.bus = bus

    async def start(self) -> None:
        await self.bus.start()

    async def aclose(self, timeout: float = 10.0) -> None:
        """The bus's owner closes it."""

    async def serve(self, host: str, handler: RequestHandler, *, fanout: bool = True) -> None:
        await self.bus.serve(host, handler, fanout=fanout)

    async def unserve(self, host: str, timeout: float = 10.0) -> None:
        await self.bus.unserve(host, timeout)

    async def call(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        return await self.bus.call(
            host, body, message_id=message_id, timeout=timeout, headers=headers
        )

    async def cast(
        self,
        host: str,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self.bus.cast(host, body, message_id=message_id, ttl=ttl, headers=headers)

    async def fanout(
        self,
        body: bytes,
        *,
        message_id: str,
        ttl: float | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        await self.bus.fanout(body, message_id=message_id, ttl=ttl, headers=headers)

    async def publish_event(
        self, routing_key: str, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> None:
        await self.bus.publish_event(routing_key, body, headers=headers)

    async def subscribe(self, pattern: str) -> Subscription:
        return await self.bus.subscribe(pattern)

    async def dead_letters(self) -> list[tuple[bytes, str]]:
        return await self.bus.dead_letters()


def agent_config(name: str, host: DemoHost, root: Path, amqp: AmqpSection) -> AgentConfig:
    """Agent `name` serving `host`; both agents share one instances path (the hosts are on
    one machine), so a live migration moves only the guest's memory."""
    return AgentConfig(
        agent=AgentSection(
            host=name,
            host_ip="127.0.0.1",
            instances_path=str(root / "instances"),
            heartbeat_interval=2.0,
        ),
        libvirt=LibvirtSection(uri=host.uri),
        guest=GuestSection(
            images_path=str(root / "images"),
            snapshots_path=str(root / "snapshots"),
            virt_type="qemu",
            cpu_mode="none",
        ),
        amqp=amqp,
        conductor=ConductorSection(database_url=str(root / "conductor.sqlite")),
        migration=MIGRATION,
    )


@asynccontextmanager
async def deployed(
    hosts: list[DemoHost], root: Path, ledger: Ledger, amqp_url: str | None
) -> AsyncIterator[Deployment]:
    """The conductor, then the agents (both ready: their guests adopted), then the client;
    on the in-process bus when `amqp_url` is None, else on RabbitMQ under a prefix of the
    demo's own, whose queues and exchanges are deleted at the end."""
    prefix = f"virtactor-demo-{uuid.uuid4().hex[:8]}"
    amqp = AmqpSection(url=amqp_url, prefix=prefix) if amqp_url else AmqpSection()
    configs = {
        name: agent_config(name, host, root, amqp) for name, host in zip(AGENTS, hosts, strict=True)
    }
    first = configs[AGENTS[0]]
    async with AsyncExitStack() as stack:
        if amqp_url:
            topology = ledger.started("RabbitMQ queues", f"prefix {prefix} at the broker")

            async def delete() -> None:
                await delete_topology(amqp_url, prefix)
                topology.cleanup = "deleted"

            stack.push_async_callback(delete)
            conductor_bus = build_transport(first)
        else:
            bus = InProcessBus()
            bus_entry = ledger.started("bus", "embedded in-process bus")

            async def close_bus() -> None:
                await bus.aclose()
                bus_entry.cleanup = "closed"

            stack.push_async_callback(close_bus)
            conductor_bus = SharedBus(bus)
        await conductor_bus.start()
        stack.push_async_callback(conductor_bus.aclose)
        conductor = ledger.started("conductor", f"SQLite {first.conductor.database_url}")
        await stack.enter_async_context(running_conductor(conductor_bus, first, upgrade=True))
        stack.callback(setattr, conductor, "cleanup", "stopped")
        agents: dict[str, Agent] = {}
        for name, config in configs.items():
            agent = Agent(config, transport=None if amqp_url else SharedBus(bus))
            stack.push_async_callback(
                _closer(agent, ledger.started("agent", f"{name} on {config.libvirt.uri}"))
            )
            await agent.start()
            agents[name] = agent
        for agent in agents.values():
            await agent.wait_ready(timeout=60)
        if amqp_url:
            # The demo plays the operator: an admin, whom the host's methods need.
            client = await ComputeClient.connect(
                amqp_url, prefix=prefix, default_timeout=CALL_TIMEOUT, is_admin=True
            )
            stack.push_async_callback(client.aclose)
        else:
            client = ComputeClient(SharedBus(bus), default_timeout=CALL_TIMEOUT, is_admin=True)
        yield Deployment(client, agents, dict(zip(AGENTS, hosts, strict=True)))


def _closer(agent: Agent, entry: Entry) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        await agent.aclose()
        entry.cleanup = "stopped"

    return close


async def delete_topology(url: str, prefix: str) -> None:
    """Delete the demo's queues and exchanges (the reply and subscription queues went with
    their connections)."""
    names = Names(prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queues = [names.dead_letter_queue, *(names.host_queue(h) for h in (*AGENTS, "conductor"))]
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in (names.commands, names.broadcast, names.events, names.dead_letter_exchange):
            await channel.exchange_delete(exchange)
