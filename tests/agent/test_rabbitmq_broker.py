"""The real RabbitMQ broker the integration tier runs against accepts confirmed publishes."""

from __future__ import annotations

import uuid

import aio_pika
import pytest

pytestmark = pytest.mark.rabbitmq


async def test_confirmed_publish_to_a_durable_queue_is_consumed_once(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect(rabbitmq_url, timeout=10)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"virtactor-test-{uuid.uuid4()}", auto_delete=True)
        body = b"\x81\xa2id\xa3one"
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id="m-1"), routing_key=queue.name, timeout=10
        )
        incoming = await queue.get(timeout=10, fail=True)
        assert incoming is not None
        await incoming.ack()
        assert (incoming.body, incoming.message_id) == (body, "m-1")
        assert await queue.get(timeout=10, fail=False) is None
        await queue.delete(if_unused=False, if_empty=False)
