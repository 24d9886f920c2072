"""Replies go only to direct reply-to addresses: a request naming an ordinary queue as its
reply-to is dead-lettered before its handler runs, and that queue gets nothing."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest

from agent.transport import AmqpTransport, Delivery, Outcome, Transport
from agent.transport.amqp_messages import is_direct_reply_to
from agent.transport.topics import host_routing_key


@pytest.mark.parametrize("transport", ["amqp"], indirect=True)
async def test_a_request_whose_reply_to_is_an_ordinary_queue_is_dead_lettered_unhandled(
    rabbitmq_url: str, transport: Transport
) -> None:
    assert isinstance(transport, AmqpTransport)
    handled: list[bytes] = []

    async def handler(delivery: Delivery) -> Outcome:
        handled.append(delivery.body)
        return Outcome(reply=b"a reply")

    await transport.serve("h1", handler)
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        victim = await channel.declare_queue(
            f"vt-test-victim-{uuid.uuid4().hex[:8]}", exclusive=True
        )
        commands = await channel.get_exchange(transport.names.commands)
        await commands.publish(
            aio_pika.Message(b"request", message_id="m-victim", reply_to=victim.name),
            routing_key=host_routing_key("h1"),
        )

        dead: list[tuple[bytes, str]] = []
        async with asyncio.timeout(10):
            while not dead:
                dead = await transport.dead_letters()
                await asyncio.sleep(0.02)
        assert dead == [(b"request", "invalid-reply-to")]
        # Serving goes on, and a reply would have been published before the request was
        # settled: by now it would be in the queue.
        assert await transport.call("h1", b"next", message_id="m-next", timeout=5) == b"a reply"
        assert await victim.get(fail=False, no_ack=True) is None
    assert handled == [b"next"]


@pytest.mark.parametrize(
    ("address", "direct"),
    [
        ("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjcuMC4wLjEAAAMTAAAAAGVoZXBp", True),
        ("amq.rabbitmq.reply-to", False),  # the broker never hands the bare pseudo-queue on
        ("amq.rabbitmq.reply-tomorrow", False),
        ("virtactor.compute.h2", False),
        ("", False),
    ],
)
def test_only_the_brokers_direct_reply_to_addresses_are_replied_to(
    address: str, direct: bool
) -> None:
    assert is_direct_reply_to(address) is direct
