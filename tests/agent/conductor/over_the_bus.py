"""Conductors and their callers on a test transport: what the service and indirection tests
share. A caller is a `BusIndirection` on a client of its own; on AMQP, `peer_transport` is
another connection to the same broker and prefix, as another process would have."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from agent.client import ComputeClient
from agent.conductor.indirection import BusIndirection
from agent.transport import CONDUCTOR_QUEUE, AmqpSettings, AmqpTransport, Transport
from schemas import ObjectRegistry, ObjectStore, default_registry, use_object_store
from schemas.objects import Instance
from tests.schemas import samples

UUID = samples.instance().uuid


def caller(
    transport: Transport, registry: ObjectRegistry = default_registry, **options: Any
) -> BusIndirection:
    """An agent's indirection on `transport`; `options` go to `BusIndirection`."""
    client = ComputeClient(transport, registry=registry, default_timeout=10, announce_interval=None)
    options.setdefault("timeout", 10.0)
    return BusIndirection(client, **options)


@asynccontextmanager
async def peer_transport(transport: Transport) -> AsyncIterator[Transport]:
    """Another connection to the bus of `transport`: on AMQP a transport of its own (another
    process's, in effect); the in-process bus is one process's, so itself."""
    if not isinstance(transport, AmqpTransport):
        yield transport
        return
    other = AmqpTransport(
        AmqpSettings(url=transport.settings.url, prefix=transport.settings.prefix)
    )
    await other.start()
    try:
        yield other
    finally:
        await other.aclose()


async def forget_conductor_queue(transport: Transport) -> None:
    """Remove the conductors' queue a test declared on the broker (the transport fixture
    removes only the hosts' queues it knows)."""
    if isinstance(transport, AmqpTransport):
        await transport.delete_host(CONDUCTOR_QUEUE)


async def stored_instance(store: ObjectStore, **values: Any) -> Instance:
    """The sample instance, written to `store` directly (as the conductor would), active."""
    instance = samples.instance(**values)
    instance.vm_state = "active"
    with use_object_store(store):
        await instance.create()
    return instance


async def read_directly(store: ObjectStore, uuid: str = UUID) -> Instance:
    """The instance as `store` holds it, read without any bus."""
    with use_object_store(store):
        return await Instance.get_by_uuid(None, uuid)


class CountingStore:
    """An ObjectStore that counts the writes reaching the store it wraps."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.puts = 0
        self.gets = 0

    async def get(self, objname: str, key: str) -> dict[str, Any] | None:
        self.gets += 1
        return await self.inner.get(objname, key)

    async def put_changes(
        self,
        objname: str,
        key: str,
        changes: Mapping[str, Any],
        expected: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.puts += 1
        await self.inner.put_changes(objname, key, changes, expected)

    async def list(
        self, objname: str, where: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self.inner.list(objname, where)

    async def delete(self, objname: str, key: str) -> bool:
        return await self.inner.delete(objname, key)
