"""The AMQP transport keeps consuming what the broker takes away from under it: a host queue
deleted while served, and the calls channel closed by the broker with a call in flight."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aio_pika
import aiormq
import pytest

from agent.errors import CallTimeout, Unroutable
from agent.transport import AmqpSettings, AmqpTransport, Delivery, Outcome

from ..conftest import delete_amqp_topology

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def pair(rabbitmq_url: str) -> AsyncIterator[tuple[AmqpTransport, AmqpTransport]]:
    prefix = f"vt-recover-{uuid.uuid4().hex[:8]}"
    settings = AmqpSettings(url=rabbitmq_url, prefix=prefix, reconnect_interval=0.2)
    agent_side, client_side = AmqpTransport(settings), AmqpTransport(settings)
    await agent_side.start()
    await client_side.start()
    yield agent_side, client_side
    await client_side.aclose()
    await agent_side.aclose()
    await delete_amqp_topology(rabbitmq_url, prefix, ["h1"])


async def test_a_served_queue_deleted_by_an_operator_is_declared_and_consumed_again(
    rabbitmq_url: str, pair: tuple[AmqpTransport, AmqpTransport]
) -> None:
    agent_side, client_side = pair

    async def echo(delivery: Delivery) -> Outcome:
        return Outcome(reply=delivery.body)

    await agent_side.serve("h1", echo)
    assert await client_side.call("h1", b"before", message_id="m0", timeout=5) == b"before"

    connection = await aio_pika.connect(rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(agent_side.names.host_queue("h1"))

    # The broker cancels the consumer; the transport declares the queue again and consumes.
    async with asyncio.timeout(20):
        attempt = 0
        while True:
            attempt += 1
            with contextlib.suppress(Unroutable, CallTimeout):
                reply = await client_side.call("h1", b"after", message_id=f"m{attempt}", timeout=1)
                break
            await asyncio.sleep(0.1)
    assert reply == b"after"


async def test_a_call_survives_its_calls_channel_being_closed_by_the_broker(
    pair: tuple[AmqpTransport, AmqpTransport],
) -> None:
    agent_side, client_side = pair
    seen: list[str] = []
    release = asyncio.Event()

    async def slow_echo(delivery: Delivery) -> Outcome:
        seen.append(delivery.message_id)
        await release.wait()
        return Outcome(reply=delivery.body)

    await agent_side.serve("h1", slow_echo)
    call = asyncio.create_task(client_side.call("h1", b"ping", message_id="c1", timeout=20))
    async with asyncio.timeout(10):
        while not seen:  # noqa: ASYNC110  # the handler has no event to wait on
            await asyncio.sleep(0.01)

    # A channel error (a passive declare of a missing exchange) makes the broker close the
    # client's calls channel: the direct reply-to address the request carries is gone with it.
    assert client_side._calls is not None
    calls_channel = await client_side._calls.channel.get_underlay_channel()
    with contextlib.suppress(aiormq.exceptions.ChannelNotFoundEntity):
        await calls_channel.exchange_declare(f"missing-{uuid.uuid4().hex}", passive=True)

    # The channel reopens, replies are consumed again and the call is sent again (same id).
    async with asyncio.timeout(10):
        while seen.count("c1") < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    release.set()
    assert await call == b"ping"


async def test_calls_keep_flowing_while_the_broker_keeps_closing_their_channel(
    pair: tuple[AmqpTransport, AmqpTransport],
) -> None:
    agent_side, client_side = pair

    async def echo(delivery: Delivery) -> Outcome:
        return Outcome(reply=delivery.body)

    await agent_side.serve("h1", echo)
    outcomes: Counter[str] = Counter()
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            try:
                await client_side.call("h1", b"x", message_id=uuid.uuid4().hex, timeout=5)
                outcomes["ok"] += 1
            except CallTimeout:
                outcomes["timeout"] += 1
            except Exception as exc:  # anything else is a transport error leaking to a caller
                outcomes[type(exc).__name__] += 1

    callers = [asyncio.create_task(caller()) for _ in range(32)]
    assert client_side._calls is not None
    for _ in range(4):
        await asyncio.sleep(0.5)
        # Publishes go on while the channel closes, reopens and consumes replies again.
        channel = await client_side._calls.channel.get_underlay_channel()
        with contextlib.suppress(aiormq.exceptions.ChannelNotFoundEntity):
            await channel.exchange_declare(f"missing-{uuid.uuid4().hex}", passive=True)
    await asyncio.sleep(1.0)
    before = outcomes["ok"]
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*callers)

    assert set(outcomes) <= {"ok", "timeout"}, outcomes
    assert outcomes["ok"] > before, outcomes  # still flowing after the last close
