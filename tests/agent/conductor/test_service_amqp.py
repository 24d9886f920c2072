"""Conductors over RabbitMQ on one database: the seed example read back by a second process,
competing consumers of one queue, and competing saves that lose no update."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from agent.conductor import SqlObjectStore, create_engine
from agent.conductor.indirection import BusIndirection
from agent.conductor.service import Conductor
from agent.transport import CONDUCTOR_QUEUE, AmqpSettings, AmqpTransport
from schemas import UnexpectedTaskStateError, use_indirection
from schemas.objects import Instance, RequestContext
from tests.agent.conftest import delete_amqp_topology
from tests.schemas import samples

from .over_the_bus import UUID, caller

ROOT = Path(__file__).resolve().parents[3]
CTX = RequestContext(request_id="req-amqp")

# The second process: a client of its own, and nothing but the bus between it and the data.
READ_BACK = """
import asyncio, json, sys
from agent.client import ComputeClient
from agent.conductor.indirection import BusIndirection
from schemas import use_indirection
from schemas.objects import Instance, RequestContext

async def main(url, prefix, uuid):
    client = await ComputeClient.connect(url, prefix=prefix, announce_interval=None)
    try:
        with use_indirection(BusIndirection(client, timeout=30)):
            instance = await Instance.get_by_uuid(RequestContext(request_id="req-2nd"), uuid)
    finally:
        await client.aclose()
    print(json.dumps({"host": instance.host, "version": instance.VERSION}))

asyncio.run(main(*sys.argv[1:]))
"""


class Broker:
    """Connections to one broker under one test prefix, each closed at the end."""

    def __init__(self, url: str, stack: AsyncExitStack) -> None:
        self.url = url
        self.prefix = f"vt-test-{uuid.uuid4().hex[:8]}"
        self._stack = stack

    async def connection(self) -> AmqpTransport:
        transport = AmqpTransport(AmqpSettings(url=self.url, prefix=self.prefix))
        await transport.start()
        self._stack.push_async_callback(transport.aclose)
        return transport

    async def caller(self) -> BusIndirection:
        return caller(await self.connection(), timeout=30)

    async def conductor(self, database: str) -> Conductor:
        """A conductor on a connection and a database engine of its own, as a process has."""
        engine = create_engine(database)
        self._stack.push_async_callback(engine.dispose)
        conductor = Conductor(await self.connection(), SqlObjectStore(engine))
        await conductor.start()
        self._stack.push_async_callback(conductor.aclose)
        return conductor


@pytest.fixture
async def broker(rabbitmq_url: str) -> AsyncIterator[Broker]:
    async with AsyncExitStack() as stack:
        broker = Broker(rabbitmq_url, stack)
        yield broker
    await delete_amqp_topology(rabbitmq_url, broker.prefix, [CONDUCTOR_QUEUE])


async def read_back_elsewhere(broker: Broker, uuid: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VIRTACTOR_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READ_BACK,
        broker.url,
        broker.prefix,
        uuid,
        cwd=ROOT,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    found = json.loads(out)
    assert isinstance(found, dict)
    return found


async def test_the_seed_example_saved_here_is_read_back_by_a_second_process(
    migrated_url: str, broker: Broker
) -> None:
    await broker.conductor(migrated_url)
    with use_indirection(await broker.caller()):
        await samples.instance().create()
        instance = await Instance.get_by_uuid(CTX, UUID)
        instance.host = "foo"
        await instance.save()
    assert await read_back_elsewhere(broker, UUID) == {"host": "foo", "version": "1.3"}


async def test_conductors_on_one_queue_share_the_requests_and_one_serves_when_the_other_stops(
    migrated_url: str, broker: Broker
) -> None:
    first = await broker.conductor(migrated_url)
    second = await broker.conductor(migrated_url)
    with use_indirection(await broker.caller()):
        await samples.instance().create()
        reads = await asyncio.gather(*(Instance.get_by_uuid(CTX, UUID) for _ in range(20)))
        assert first.server.stats.requests > 0 and second.server.stats.requests > 0
        await first.aclose()
        served = second.server.stats.requests
        more = await asyncio.gather(*(Instance.get_by_uuid(CTX, UUID) for _ in range(5)))
    assert [i.uuid for i in reads + more] == [UUID] * 25
    assert second.server.stats.requests == served + 5


async def test_two_agents_saving_one_instance_at_once_lose_no_update(
    migrated_url: str, broker: Broker
) -> None:
    await broker.conductor(migrated_url)
    await broker.conductor(migrated_url)
    one, other = await broker.caller(), await broker.caller()
    with use_indirection(one):
        await samples.instance().create()

    async def saves(objects: BusIndirection, field: str, prefix: str) -> None:
        with use_indirection(objects):
            instance = await Instance.get_by_uuid(CTX, UUID)
            for i in range(10):
                setattr(instance, field, f"{prefix}-{i}")
                await instance.save()

    async def pause(objects: BusIndirection) -> str:
        with use_indirection(objects):
            instance = await Instance.get_by_uuid(CTX, UUID)
            instance.task_state = "pausing"
            try:
                await instance.save(expected_task_state=[None])
            except UnexpectedTaskStateError:
                return "refused"
            return "saved"

    await asyncio.gather(saves(one, "host", "a"), saves(other, "node", "b"))
    outcomes = await asyncio.gather(pause(one), pause(other))
    with use_indirection(one):
        stored = await Instance.get_by_uuid(CTX, UUID)
    assert (stored.host, stored.node, stored.task_state) == ("a-9", "b-9", "pausing")
    assert sorted(outcomes) == ["refused", "saved"]
