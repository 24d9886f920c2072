"""The semantics both transports share: calls, casts, fanout, events, expiry, dead letters."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import CallTimeout, TransportClosed, Unroutable
from agent.transport import Delivery, InProcessBus, Outcome, Transport


async def declare(transport: Transport, host: str) -> None:
    declare_host = transport.declare_host  # type: ignore[attr-defined]
    result = declare_host(host)
    if asyncio.iscoroutine(result):
        await result


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Delivery] = []
        self.arrived = asyncio.Event()

    async def echo_reversed(self, delivery: Delivery) -> Outcome:
        self.seen.append(delivery)
        self.arrived.set()
        return Outcome(reply=delivery.body[::-1])


async def test_call_returns_the_handlers_reply(transport: Transport) -> None:
    recorder = Recorder()
    await transport.serve("h1", recorder.echo_reversed)
    assert await transport.call("h1", b"abc", message_id="m1", timeout=5) == b"cba"
    assert [(d.body, d.message_id, d.reply_expected) for d in recorder.seen] == [
        (b"abc", "m1", True)
    ]


async def test_concurrent_calls_each_get_their_own_reply(transport: Transport) -> None:
    recorder = Recorder()
    await transport.serve("h1", recorder.echo_reversed)
    bodies = [f"body-{i}".encode() for i in range(50)]
    replies = await asyncio.gather(
        *(transport.call("h1", b, message_id=f"m{i}", timeout=10) for i, b in enumerate(bodies))
    )
    assert replies == [b[::-1] for b in bodies]


async def test_cast_is_delivered_once_without_reply(transport: Transport) -> None:
    recorder = Recorder()
    await transport.serve("h1", recorder.echo_reversed)
    await transport.cast("h1", b"fire", message_id="c1", ttl=None)
    await asyncio.wait_for(recorder.arrived.wait(), 10)
    await asyncio.sleep(0.1)
    assert [(d.body, d.reply_expected) for d in recorder.seen] == [(b"fire", False)]


async def test_fanout_reaches_every_served_host(transport: Transport) -> None:
    first, second = Recorder(), Recorder()
    await transport.serve("h1", first.echo_reversed)
    await transport.serve("h2", second.echo_reversed)
    await transport.fanout(b"all", message_id="f1", ttl=None)
    await asyncio.wait_for(asyncio.gather(first.arrived.wait(), second.arrived.wait()), 10)
    assert [d.body for d in first.seen] == [b"all"] == [d.body for d in second.seen]


async def test_call_to_a_host_nobody_serves_is_unroutable_at_once(transport: Transport) -> None:
    with pytest.raises(Unroutable, match="no agent is serving host 'nowhere'"):
        await transport.call("nowhere", b"x", message_id="u1", timeout=5)


async def test_cast_to_a_host_nobody_serves_is_unroutable(transport: Transport) -> None:
    with pytest.raises(Unroutable, match="'nowhere'"):
        await transport.cast("nowhere", b"x", message_id="u2", ttl=None)


async def test_slow_handler_makes_the_call_time_out_not_hang(transport: Transport) -> None:
    release = asyncio.Event()

    async def slow(delivery: Delivery) -> Outcome:
        await release.wait()
        return Outcome(reply=b"late")

    await transport.serve("h1", slow)
    with pytest.raises(CallTimeout, match=r"from host 'h1' within 0\.300s"):
        await transport.call("h1", b"x", message_id="t1", timeout=0.3)
    release.set()


async def test_expired_cast_is_dead_lettered_not_delivered(transport: Transport) -> None:
    await declare(transport, "idle")
    await transport.cast("idle", b"stale", message_id="e1", ttl=0.05)
    await asyncio.sleep(0.3)
    recorder = Recorder()
    await transport.serve("idle", recorder.echo_reversed)
    await transport.cast("idle", b"fresh", message_id="e2", ttl=None)
    await asyncio.wait_for(recorder.arrived.wait(), 10)
    assert [d.body for d in recorder.seen] == [b"fresh"]
    dead = await wait_for_dead_letters(transport, 1)
    assert dead == [(b"stale", "expired")]


async def test_dead_letter_outcome_parks_the_request_and_serving_goes_on(
    transport: Transport,
) -> None:
    served: list[bytes] = []

    async def picky(delivery: Delivery) -> Outcome:
        if delivery.body.startswith(b"bad"):
            return Outcome(dead_letter="undecodable")
        served.append(delivery.body)
        return Outcome(reply=b"ok")

    await transport.serve("h1", picky)
    await transport.cast("h1", b"bad-1", message_id="p1", ttl=None)
    assert await transport.call("h1", b"good", message_id="p2", timeout=5) == b"ok"
    assert served == [b"good"]
    assert await wait_for_dead_letters(transport, 1) == [(b"bad-1", "undecodable")]


async def test_events_reach_subscribers_whose_topic_pattern_matches(transport: Transport) -> None:
    one_instance = await transport.subscribe("instance.*.state")
    everything = await transport.subscribe("#")
    await transport.publish_event("instance.u1.state", b"s1")
    await transport.publish_event("host.h1.enabled", b"h1")
    await transport.publish_event("instance.u2.state", b"s2")
    assert await take(one_instance, 2) == [b"s1", b"s2"]
    assert await take(everything, 3) == [b"s1", b"h1", b"s2"]
    await one_instance.aclose()
    await everything.aclose()


@pytest.mark.parametrize("wait", [0.0, 0.3], ids=["closed-while-publishing", "closed-while-queued"])
async def test_closing_fails_a_waiting_call_and_refuses_new_ones(
    transport: Transport, wait: float
) -> None:
    await declare(transport, "idle")  # a queue with no agent: the call waits
    call = asyncio.create_task(transport.call("idle", b"x", message_id="w1", timeout=30))
    await asyncio.sleep(wait)
    await transport.aclose()
    with pytest.raises(TransportClosed):
        await asyncio.wait_for(call, 10)
    with pytest.raises(TransportClosed):
        await transport.call("idle", b"y", message_id="w2", timeout=5)


async def test_closed_bus_refuses_new_requests() -> None:
    bus = InProcessBus()
    await bus.start()
    await bus.aclose()
    with pytest.raises(Exception, match="the transport is closed"):
        await bus.cast("h1", b"x", message_id="z", ttl=None)


async def take(subscription: object, count: int) -> list[bytes]:
    received: list[bytes] = []

    async def collect() -> None:
        async for body in subscription:  # type: ignore[attr-defined]
            received.append(body)
            if len(received) == count:
                return

    await asyncio.wait_for(collect(), 10)
    return received


async def wait_for_dead_letters(transport: Transport, count: int) -> list[tuple[bytes, str]]:
    collected: list[tuple[bytes, str]] = []
    for _ in range(100):
        collected += await transport.dead_letters()
        if len(collected) >= count:
            return collected
        await asyncio.sleep(0.05)
    return collected
