"""An agent-side RPC stack over each transport, with small actors standing in for the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from actors import HOST_ADDRESS, Actor, ActorSystem, BlockingExecutor, handler
from agent.client import ComputeClient
from agent.errors import AgentInitializing, InstanceInvalidState, InstanceNotFound
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.server import Dispatcher
from agent.transport import Transport
from schemas import DecodeLimits, IncompatibleObjectVersion, ObjectRegistry, default_registry
from schemas.objects import Instance, InstanceInfo


@dataclass
class Journal:
    """What the stand-in actors did, so tests can count executions."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


class StandInHost(Actor):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.enabled = True

    @handler
    async def set_host_enabled(self, enabled: bool) -> str:
        self.journal.calls.append(("host", f"set_host_enabled:{enabled}"))
        self.enabled = enabled
        return "enabled" if enabled else "disabled"

    @handler
    async def stale_save(self) -> None:
        # A handler whose own object call met an older backend: not the dispatcher's refusal.
        self.journal.calls.append(("host", "stale_save"))
        raise IncompatibleObjectVersion(
            objname="Instance", objver="1.2", supported="1.1", manifest={"Instance": "1.1"}
        )

    @handler
    async def unsendable(self) -> object:
        self.journal.calls.append(("host", "unsendable"))
        return {1, 2, 3}  # a set has no msgpack form

    @handler
    async def not_ready_once(self) -> str:
        self.journal.calls.append(("host", "not_ready_once"))
        if len(self.journal.calls) == 1:
            raise AgentInitializing(host="h1")
        return "ready"

    @handler
    async def list_instance_uuids(self) -> list[str]:
        return [a.partition(":")[2] for a in self.system.addresses() if a.startswith("instance:")]


class StandInInstance(Actor):
    def __init__(self, uuid: str, journal: Journal) -> None:
        self.uuid = uuid
        self.journal = journal
        self.paused = False

    @handler
    async def get_info(self, instance: Instance) -> InstanceInfo:
        self.journal.calls.append((self.uuid, "get_info"))
        return InstanceInfo(
            state="running",
            internal_id="7",
            max_mem_kb=instance.memory_mb * 1024,
            mem_kb=instance.memory_mb * 1024,
            num_cpu=instance.vcpus,
            cpu_time_ns=5,
        )

    @handler
    async def pause(self, instance: Instance) -> None:
        self.journal.calls.append((self.uuid, "pause"))
        if self.paused:
            raise InstanceInvalidState(
                action="pause", uuid=self.uuid, attr="power_state", state="paused"
            )
        self.paused = True

    @handler
    async def forget(self) -> None:
        raise InstanceNotFound(uuid=self.uuid)

    @handler
    async def crash(self) -> None:
        raise ZeroDivisionError("division by zero")

    @handler
    async def slow(self) -> str:
        self.journal.calls.append((self.uuid, "slow"))
        await self.journal.release.wait()
        return "finished"


METHODS = MethodTable({Scope.HOST: StandInHost, Scope.INSTANCE: StandInInstance})


@dataclass
class Stack:
    transport: Transport
    system: ActorSystem
    dispatcher: Dispatcher
    journal: Journal
    client: ComputeClient


async def serve(
    transport: Transport,
    host: str,
    journal: Journal,
    registry: ObjectRegistry = default_registry,
    limits: DecodeLimits | None = None,
) -> tuple[ActorSystem, Dispatcher]:
    system = ActorSystem(executor=BlockingExecutor(max_workers=2, name=f"rpc-{host}"))
    system.spawn(HOST_ADDRESS, lambda: StandInHost(journal))
    dispatcher = Dispatcher(
        host=host,
        system=system,
        methods=METHODS,
        instance_factory=lambda uuid: StandInInstance(uuid, journal),
        registry=registry,
        manifest=registry.manifest(),
        limits=limits or DecodeLimits(),
    )
    await transport.serve(host, dispatcher.handle)
    return system, dispatcher


@pytest.fixture
async def stack(transport: Transport) -> AsyncIterator[Stack]:
    journal = Journal()
    system, dispatcher = await serve(transport, "h1", journal)
    client = ComputeClient(transport, default_timeout=10, is_admin=True)
    yield Stack(transport, system, dispatcher, journal, client)
    journal.release.set()
    await system.aclose(timeout=5)
