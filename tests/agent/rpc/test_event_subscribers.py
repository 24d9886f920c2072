"""Subscribers of an older release announce the versions they read, and an agent of a newer
one publishes its events at them, on each transport: no announcing subscriber skips an
event during an upgrade."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from agent.client import ComputeClient
from agent.rpc.events import EventPublisher
from agent.rpc.subscribers import SubscriberWatch
from agent.transport import Transport
from tests.agent.rpc.widgets import NEW_RELEASE, OLD_RELEASE, WidgetNew, WidgetOld

HOST = "h9"
TOPIC = f"host.{HOST}.widget"


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        # Polls: an announcement is heard by another task, with nothing to wait on here.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@asynccontextmanager
async def new_agent(
    transport: Transport, answer_wait: float = 0.0
) -> AsyncIterator[EventPublisher]:
    """The events side of an agent of the new release: its publisher, listening to
    announcements from when it starts."""
    publisher = EventPublisher(transport, HOST, NEW_RELEASE)
    watch = SubscriberWatch(transport, publisher, answer_wait=answer_wait)
    await watch.start()
    try:
        yield publisher
    finally:
        await watch.aclose()


def knows(publisher: EventPublisher, client: ComputeClient) -> bool:
    assert client.announcer is not None
    return client.announcer.subscriber in publisher.subscribers.subscribers(time.monotonic())


async def read(stream: Any, count: int) -> list[Any]:
    events = aiter(stream)
    return [(await asyncio.wait_for(anext(events), 10)).payload for _ in range(count)]


async def test_an_announcing_subscriber_of_an_older_release_reads_every_event(
    transport: Transport,
) -> None:
    old_client = ComputeClient(transport, registry=OLD_RELEASE, default_timeout=10)
    async with (
        new_agent(transport) as publisher,
        await old_client.subscribe(f"host.{HOST}.*") as stream,
    ):
        await until(lambda: knows(publisher, old_client))
        assert publisher.target == {"Widget": "1.0"}
        for name in ("w1", "w2", "w3"):
            await publisher.publish(TOPIC, WidgetNew(name=name, colour="red"))
        assert await read(stream, 3) == [WidgetOld(name=n) for n in ("w1", "w2", "w3")]
        assert stream.skipped == 0


async def test_a_subscriber_of_an_older_release_that_does_not_announce_still_skips(
    transport: Transport,
) -> None:
    silent = ComputeClient(
        transport, registry=OLD_RELEASE, default_timeout=10, announce_interval=None
    )
    async with (
        new_agent(transport) as publisher,
        await silent.subscribe(f"host.{HOST}.*") as stream,
    ):
        for name in ("w1", "w2"):
            await publisher.publish(TOPIC, WidgetNew(name=name))
        # An agent of the old release publishes one it reads, to end the wait.
        await EventPublisher(transport, HOST, OLD_RELEASE).publish(TOPIC, WidgetOld(name="old"))
        assert await read(stream, 1) == [WidgetOld(name="old")]
        assert stream.skipped == 2
        assert publisher.target is None


async def test_an_agent_publishes_at_its_own_versions_again_once_the_old_subscriber_is_gone(
    transport: Transport,
) -> None:
    # Leases of 0.3 s: re-announced every 0.1 s while the stream is open.
    old_client = ComputeClient(
        transport, registry=OLD_RELEASE, default_timeout=10, announce_interval=0.1
    )
    new_client = ComputeClient(transport, registry=NEW_RELEASE, default_timeout=10)
    async with new_agent(transport) as publisher:
        async with await old_client.subscribe(f"host.{HOST}.*"):
            await until(lambda: knows(publisher, old_client))
            await asyncio.sleep(0.6)  # two leases: only re-announcements keep it known
            assert publisher.target == {"Widget": "1.0"}
        assert old_client.announcer is not None and old_client.announcer.announced >= 4
        gone = time.monotonic()
        await until(lambda: publisher.target is None)
        assert time.monotonic() - gone >= 0.15  # forgotten by its lease, not at once
        async with await new_client.subscribe(f"host.{HOST}.*") as stream:
            await until(lambda: knows(publisher, new_client))
            await publisher.publish(TOPIC, WidgetNew(name="w", colour="red"))
            assert await read(stream, 1) == [WidgetNew(name="w", colour="red")]


async def test_an_agent_started_after_a_subscriber_hears_it_before_its_first_event(
    transport: Transport,
) -> None:
    # An interval far longer than the test: only the agent's solicitation can teach it.
    old_client = ComputeClient(
        transport, registry=OLD_RELEASE, default_timeout=10, announce_interval=600
    )
    async with await old_client.subscribe(f"host.{HOST}.*") as stream:
        async with new_agent(transport, answer_wait=0.5) as publisher:
            await publisher.publish(TOPIC, WidgetNew(name="first", colour="red"))
            assert await read(stream, 1) == [WidgetOld(name="first")]
            assert stream.skipped == 0
        assert old_client.announcer is not None and old_client.announcer.announced == 2


async def test_an_agent_ignores_a_message_that_is_not_an_announcement(
    transport: Transport,
) -> None:
    async with new_agent(transport) as publisher:
        watch = SubscriberWatch(transport, publisher)
        watch.receive(b"\x93garbage")
        assert watch.refused == 1
        assert publisher.subscribers.subscribers(time.monotonic()) == {}
