"""A host whose actor calls another host while serving a request: the shape of an agent's
handler calling a peer (a live migration's steps), without libvirt. The dispatcher, the
client it calls with and the transport are the agent's own classes; only the actor is small.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from actors import HOST_ADDRESS, Actor, ActorSystem, BlockingExecutor, handler
from agent.client import ComputeClient
from agent.observability.spans import NO_SPANS, Spans
from agent.observability.tracing import current_trace
from agent.rpc.events import EventPublisher
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.server import Dispatcher
from agent.transport import Transport
from schemas import DecodeLimits, default_registry
from schemas.objects.virt import InstanceInfo

log = logging.getLogger("tests.relay")


class Relay(Actor):
    """`whoami` answers the traceparent its request runs in; `relay` asks `host`'s
    `whoami` through the host's peer client and answers both."""

    def __init__(self, peers: ComputeClient, events: EventPublisher) -> None:
        self.peers = peers
        self.events = events

    @handler
    async def whoami(self) -> str | None:
        log.info("whoami served")
        trace = current_trace()
        return None if trace is None else str(trace)

    @handler
    async def relay(self, host: str) -> dict[str, Any]:
        here = current_trace()
        there = await self.peers.call(host, "whoami")
        return {"here": None if here is None else str(here), "there": there}

    @handler
    async def publish(self, topic: str) -> None:
        await self.events.publish(topic, InstanceInfo(state="running"))


@asynccontextmanager
async def relay_host(
    transport: Transport, host: str, spans: Spans = NO_SPANS
) -> AsyncIterator[Dispatcher]:
    """`host` served on `transport` by a `Relay`, its calls and its serving traced with
    `spans`; on exit it is no longer served and its actors are stopped."""
    executor = BlockingExecutor(1, f"relay-{host}")
    system = ActorSystem(executor=executor, stop_timeout=2.0)
    peers = ComputeClient(
        transport, default_timeout=10, announce_interval=None, spans=spans, is_admin=True
    )
    events = EventPublisher(transport, host, default_registry)
    system.spawn(HOST_ADDRESS, Relay(peers, events))
    dispatcher = Dispatcher(
        host=host,
        system=system,
        methods=MethodTable({Scope.HOST: Relay}),
        instance_factory=lambda uuid: Relay(peers, events),
        registry=default_registry,
        manifest=default_registry.manifest(),
        limits=DecodeLimits(),
        spans=spans,
    )
    await transport.serve(host, dispatcher.handle)
    try:
        yield dispatcher
    finally:
        await transport.unserve(host, 5)
        await system.aclose()
        await executor.aclose()
