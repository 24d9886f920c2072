"""Both transports behind one fixture, so every semantic test runs on each of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest

from agent.transport import AmqpSettings, AmqpTransport, InProcessBus, Names, Transport


async def delete_amqp_topology(url: str, prefix: str, hosts: list[str]) -> None:
    names = Names(prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in [names.dead_letter_queue, *(names.host_queue(h) for h in hosts)]:
            await channel.queue_delete(queue)
        for exchange in (names.commands, names.broadcast, names.events, names.dead_letter_exchange):
            await channel.exchange_delete(exchange)


@pytest.fixture(params=["inproc", "amqp"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    if request.param == "inproc":
        bus = InProcessBus()
        await bus.start()
        yield bus
        await bus.aclose()
        return
    url = request.getfixturevalue("rabbitmq_url")
    prefix = f"vt-test-{uuid.uuid4().hex[:8]}"
    amqp = AmqpTransport(AmqpSettings(url=url, prefix=prefix))
    await amqp.start()
    yield amqp
    await amqp.aclose()
    await delete_amqp_topology(url, prefix, ["h1", "h2", "idle"])
