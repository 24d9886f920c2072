"""The agent's dispatcher serving real host and instance actors over an in-memory driver, on
any transport: the bus side of the agent without libvirt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from actors import ActorSystem, BlockingExecutor
from actors.host import HostActor
from actors.instance import InstanceActor
from agent.client import ComputeClient
from agent.rpc.catalogue import exposed_methods
from agent.rpc.events import EventPublisher
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.server import Dispatcher
from agent.transport import Transport
from schemas import DecodeLimits, default_registry
from tests.actors.instance.fakes import FakeInstanceDriver


@asynccontextmanager
async def serving_instances(
    transport: Transport, host: str, driver: FakeInstanceDriver
) -> AsyncIterator[ComputeClient]:
    """`host` served on `transport`, its instance actors on `driver`, publishing their events
    there; yields a client (10 s default deadline). On exit the host is no longer served
    and its actors are stopped; the transport stays open."""
    executor = BlockingExecutor(2, f"serving-{host}")
    system = ActorSystem(executor=executor, stop_timeout=2.0)
    publisher = EventPublisher(transport, host, default_registry)
    dispatcher = Dispatcher(
        host=host,
        system=system,
        methods=MethodTable(
            {Scope.HOST: HostActor, Scope.INSTANCE: InstanceActor}, exposed=exposed_methods()
        ),
        instance_factory=lambda u: InstanceActor(u, driver, publisher, driver=driver),
        registry=default_registry,
        manifest=default_registry.manifest(),
        limits=DecodeLimits(),
    )
    await transport.serve(host, dispatcher.handle)
    try:
        yield ComputeClient(transport, default_timeout=10, is_admin=True)
    finally:
        await transport.unserve(host, 5)
        await system.aclose()
        await executor.aclose()
