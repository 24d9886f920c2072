"""Helpers of the Host layer's tests: a recording sink, an instance factory that remembers
its actors, and a whole agent side (actor system + HostRuntime) on any libvirt URI.

The doubles record what the code under test published, so tests assert on real outputs;
nothing here stands in for libvirt. The system tier imports these too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libvirt

from actors import ActorRef, ActorSystem, BlockingExecutor
from actors.instance import EventSink, InstanceActor, InstanceHypervisor, power_state_topic
from agent.virt.reconnect import Backoff
from agent.virt.runtime import HostRuntime, HostRuntimeSettings
from schemas.base import VersionedObject
from schemas.objects.virt import InstanceInfo


@dataclass(slots=True)
class RecordingSink:
    """An EventSink that keeps every (topic, object) published, in order."""

    published: list[tuple[str, VersionedObject]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        self.published.append((topic, obj))
        self._changed.set()

    def on(self, topic: str) -> list[VersionedObject]:
        return [obj for t, obj in self.published if t == topic]

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()


@dataclass(slots=True)
class InstanceActors:
    """An instance factory for HostRuntime that remembers the actors it made, by uuid."""

    made: dict[str, InstanceActor] = field(default_factory=dict)

    def __call__(
        self,
        uuid: str,
        hypervisor: InstanceHypervisor,
        sink: EventSink,
        *,
        down_confirm_delay: float = 0.0,
    ) -> InstanceActor:
        actor = InstanceActor(uuid, hypervisor, sink, down_confirm_delay=down_confirm_delay)
        self.made[uuid] = actor
        return actor

    def kinds(self, uuid: str) -> list[str]:
        actor = self.made.get(uuid)
        return [] if actor is None else [event.kind for event in actor.received]


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `condition` (for state kept by actors, which signal nothing) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - actors' state signals nothing to wait on
            await asyncio.sleep(0.01)


@dataclass(slots=True)
class Agent:
    """The agent's host side, started on one libvirt URI, with what it published."""

    runtime: HostRuntime
    ref: ActorRef
    sink: RecordingSink
    actors: InstanceActors
    system: ActorSystem

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(conn, *args)` through the agent's own Host."""
        return await self.runtime.host.run(fn, *args)

    def states(self, uuid: str) -> list[str]:
        """The power states published for `uuid`, in order."""
        published = self.sink.on(power_state_topic(uuid))
        return [obj.state for obj in published if isinstance(obj, InstanceInfo)]


async def start_agent(
    executor: BlockingExecutor,
    uri: str,
    instances_path: str,
    *,
    host: str = "compute-1",
    host_ip: str | None = "192.0.2.10",
    flap_delay: float = 0.2,
    resync_interval: float = 3600.0,
    liveness_interval: float = 5.0,
    keepalive: tuple[int, int] = (5, 3),
) -> Agent:
    """A started HostRuntime in a fresh actor system (init_host not called yet)."""
    system = ActorSystem(executor=executor, stop_timeout=2.0)
    sink, actors = RecordingSink(), InstanceActors()
    settings = HostRuntimeSettings(
        uri=uri,
        host=host,
        instances_path=instances_path,
        host_ip=host_ip,
        reboot_flap_delay=flap_delay,
        resync_interval=resync_interval,
        heartbeat_interval=3600.0,
        liveness_interval=liveness_interval,
        keepalive=keepalive,
        backoff=Backoff(initial=0.1, maximum=1.0),
    )
    runtime = HostRuntime(system, sink, settings, instance_factory=actors)
    ref = await runtime.start()
    return Agent(runtime, ref, sink, actors, system)


async def stop_agent(agent: Agent) -> None:
    """Stop the agent's host side and its actors; guests are left as they are."""
    await agent.runtime.aclose()
    await agent.system.aclose()


def remove_domain(uri: str, uuid: str) -> None:
    """Destroy and undefine domain `uuid` at `uri` if it exists (blocking; test clean-up)."""
    conn = libvirt.open(uri)
    try:
        remove_domain_from(conn, uuid)
    finally:
        conn.close()


def remove_domain_from(conn: libvirt.virConnect, uuid: str) -> None:
    """Destroy and undefine domain `uuid` on `conn` if it exists (blocking; test clean-up)."""
    try:
        dom = conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise
    # Read before destroy: a transient domain is gone once destroyed.
    persistent = dom.isPersistent()
    if dom.isActive():
        dom.destroy()
    if persistent:
        dom.undefine()
