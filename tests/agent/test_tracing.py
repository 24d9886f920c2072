"""The W3C trace context: which trace the running code works in, how a request carries it
(a `traceparent` header, never a field of the versioned objects), and that a request served
and a call made while serving it share one trace, on both transports; log lines name it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from actors import Actor, ActorSystem, BlockingExecutor, handler
from agent.client import ComputeClient
from agent.logs import log_handler
from agent.observability.tracing import (
    TraceParent,
    bind_trace,
    current_trace,
    outgoing_trace,
    trace_id_of,
    unbind_trace,
)
from agent.rpc.envelope import Kind, Reply, pack, unpack
from agent.transport import AmqpTransport, Transport
from agent.transport.topics import host_routing_key
from schemas import DecodeLimits, decode, default_registry, encode
from schemas.objects import RequestContext
from tests.agent.relay import relay_host

TRACE = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")


@pytest.fixture
def bound() -> Iterator[TraceParent]:
    """TRACE bound as the test task's current trace."""
    token = bind_trace(TRACE)
    try:
        yield TRACE
    finally:
        unbind_trace(token)


def parsed(text: object) -> TraceParent:
    trace = TraceParent.parse(text)
    assert trace is not None, text
    return trace


# --- which trace is current ----------------------------------------------------------------


def test_outside_any_request_there_is_no_trace_and_each_request_starts_one() -> None:
    assert current_trace() is None

    first, second = outgoing_trace(), outgoing_trace()

    assert first.trace_id != second.trace_id
    assert parsed(str(first)) == first and first.flags == "01"


def test_a_bound_trace_is_continued_under_a_new_span_id(bound: TraceParent) -> None:
    sent = outgoing_trace()

    assert current_trace() is bound
    assert (sent.trace_id, sent.flags) == (bound.trace_id, bound.flags)
    assert sent.span_id not in (bound.span_id, outgoing_trace().span_id)


class TraceReader(Actor):
    @handler
    async def read(self) -> list[str | None]:
        current = current_trace()
        return [None if current is None else str(current), str(outgoing_trace())]


async def test_an_actor_handler_works_in_the_trace_its_messages_context_carries() -> None:
    executor = BlockingExecutor(1, "trace-reader")
    context = RequestContext(request_id="req-1")
    context.obj_trace = TRACE
    async with ActorSystem(executor=executor) as system:
        ref = system.spawn("reader", TraceReader)
        token = bind_trace(TraceParent.new())  # the asker's own: not the message's
        try:
            current, sent = await ref.ask("read", timeout=10, context=context)
            without = await ref.ask("read", timeout=10, context=RequestContext(request_id="r2"))
        finally:
            unbind_trace(token)
    await executor.aclose()

    assert current == str(TRACE)
    assert parsed(sent).trace_id == TRACE.trace_id and parsed(sent).span_id != TRACE.span_id
    assert without[0] is None  # the actor's task starts from an empty context
    assert trace_id_of(context) == TRACE.trace_id


def test_a_trace_and_its_tracestate_travel_as_headers_and_back() -> None:
    with_state = TraceParent(TRACE.trace_id, TRACE.span_id, "00", "vendor=abc,other=1")

    headers = with_state.headers()

    assert headers == {"traceparent": f"00-{TRACE.trace_id}-{TRACE.span_id}-00",
                       "tracestate": "vendor=abc,other=1"}  # fmt: skip
    assert TraceParent.from_headers(headers) == with_state
    assert with_state.child().state == "vendor=abc,other=1"
    assert TRACE.headers() == {"traceparent": str(TRACE)}
    # AMQP may hand a long string over undecoded.
    assert TraceParent.from_headers({"traceparent": str(TRACE).encode()}) == TRACE
    assert TraceParent.from_headers(None) is None
    assert TraceParent.from_headers({"traceparent": "garbage"}) is None


def test_the_trace_attached_to_a_context_is_never_encoded_with_it() -> None:
    context = RequestContext(request_id="req-1", deadline=1.5)
    plain = encode(context)
    context.obj_trace = TRACE

    data = encode(context)
    decoded = decode(data, registry=default_registry)

    assert data == plain
    assert isinstance(decoded, RequestContext)
    assert getattr(decoded, "obj_trace", None) is None and trace_id_of(decoded) is None


# --- over the bus -----------------------------------------------------------------------------


async def test_a_call_carries_the_callers_trace_to_the_handler(
    transport: Transport, bound: TraceParent
) -> None:
    async with relay_host(transport, "h1"):
        client = ComputeClient(transport, default_timeout=10, announce_interval=None, is_admin=True)
        served = parsed(await client.call("h1", "whoami"))

    assert served.trace_id == bound.trace_id
    assert served.span_id != bound.span_id  # the client's own hop


async def test_a_call_made_while_serving_a_request_continues_its_trace(
    transport: Transport, bound: TraceParent
) -> None:
    async with relay_host(transport, "h1"), relay_host(transport, "h2"):
        client = ComputeClient(transport, default_timeout=10, announce_interval=None, is_admin=True)
        answer = await client.call("h1", "relay", {"host": "h2"})

    here, there = parsed(answer["here"]), parsed(answer["there"])
    assert here.trace_id == there.trace_id == bound.trace_id
    assert len({bound.span_id, here.span_id, there.span_id}) == 3


async def test_a_client_serving_nothing_starts_a_new_trace_per_call(transport: Transport) -> None:
    async with relay_host(transport, "h1"):
        client = ComputeClient(transport, default_timeout=10, announce_interval=None, is_admin=True)
        first = parsed(await client.call("h1", "whoami"))
        second = parsed(await client.call("h1", "whoami"))

    assert first.trace_id != second.trace_id


async def test_a_request_without_a_traceparent_is_served_in_a_trace_of_its_own(
    transport: Transport,
) -> None:
    # What a client of release 0.1.0 sends: no headers at all.
    async with relay_host(transport, "h1"):
        client = ComputeClient(transport, default_timeout=10, announce_interval=None, is_admin=True)
        request = client._request(Kind.CALL, "h1", "whoami", None, None, 10)
        raw = await transport.call("h1", pack(request), message_id=request.message_id, timeout=10)

    reply = unpack(raw, default_registry, DecodeLimits())
    assert isinstance(reply, Reply) and reply.error is None
    assert parsed(reply.result).trace_id != request.trace.trace_id  # type: ignore[union-attr]


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """JSON lines of the relay's handlers and of the request server."""
    stream = io.StringIO()
    handler = log_handler("json", stream)
    loggers = [logging.getLogger("tests.relay"), logging.getLogger("agent.rpc.server")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


async def test_every_line_a_traced_request_causes_names_its_trace_id(
    transport: Transport, bound: TraceParent, captured: io.StringIO
) -> None:
    async with relay_host(transport, "h1"), relay_host(transport, "h2"):
        client = ComputeClient(transport, default_timeout=10, announce_interval=None, is_admin=True)
        await client.call("h1", "relay", {"host": "h2"})

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    served = [line for line in lines if line.get("rpc_method") in ("relay", "whoami")]
    handled = [line for line in lines if line["message"] == "whoami served"]
    assert [line["rpc_method"] for line in served] == ["whoami", "relay"]
    assert len(handled) == 1
    assert {line.get("trace_id") for line in served + handled} == {bound.trace_id}


# --- on the broker's messages ---------------------------------------------------------------


@pytest.fixture
async def amqp(rabbitmq_url: str) -> Any:
    """The `transport` fixture's AMQP side alone, for tests that read the broker's messages."""
    from agent.transport import AmqpSettings
    from tests.agent.conftest import delete_amqp_topology

    prefix = f"vt-trace-{uuid.uuid4().hex[:8]}"
    transport = AmqpTransport(AmqpSettings(url=rabbitmq_url, prefix=prefix))
    await transport.start()
    yield transport
    await transport.aclose()
    await delete_amqp_topology(rabbitmq_url, prefix, ["h1"])


async def test_requests_replies_and_events_carry_the_trace_as_amqp_headers(
    amqp: AmqpTransport, rabbitmq_url: str
) -> None:
    """Read off the broker: a request sent with a traceparent header is answered with a
    reply whose header continues it, and an event its handler publishes carries it too."""
    sent = TraceParent.new()
    client = ComputeClient(amqp, default_timeout=10, announce_interval=None, is_admin=True)
    connection = await aio_pika.connect(rabbitmq_url)
    async with connection, relay_host(amqp, "h1"):
        channel = await connection.channel()
        events = await channel.declare_queue(exclusive=True)
        await events.bind(amqp.names.events, routing_key="instance.#")
        underlay = await channel.get_underlay_channel()
        replies: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

        async def on_reply(message: DeliveredMessage) -> None:
            replies.put_nowait(message)

        await underlay.basic_consume("amq.rabbitmq.reply-to", on_reply, no_ack=True)
        topic = f"instance.{uuid.uuid4()}.power_state"
        request = client._request(Kind.CALL, "h1", "publish", {"topic": topic}, None, 10)
        await underlay.basic_publish(
            pack(request),
            exchange=amqp.names.commands,
            routing_key=host_routing_key("h1"),
            properties=Basic.Properties(
                message_id=request.message_id,
                correlation_id=request.message_id,
                reply_to="amq.rabbitmq.reply-to",
                headers=dict[str, Any](sent.headers()),
            ),
        )
        async with asyncio.timeout(10):
            reply = await replies.get()
            event = await events.get(timeout=10)

    answer = unpack(reply.body, default_registry, DecodeLimits())
    assert isinstance(answer, Reply) and answer.error is None
    assert parsed((reply.header.properties.headers or {})["traceparent"]) == sent
    assert parsed((event.headers or {})["traceparent"]) == sent


async def test_a_request_the_agent_dead_letters_keeps_its_trace_headers(
    amqp: AmqpTransport, rabbitmq_url: str
) -> None:
    sent = TraceParent(TRACE.trace_id, TRACE.span_id, "01", "vendor=abc")
    async with relay_host(amqp, "h1"):
        # Undecodable: the dispatcher dead-letters the cast, nobody to tell.
        await amqp.cast("h1", b"garbage", message_id="m-1", ttl=10, headers=sent.headers())
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(amqp.names.dead_letter_queue)
            async with asyncio.timeout(10):
                # The broker signals nothing to wait on: poll the queue.
                while (letter := await queue.get(fail=False, no_ack=True)) is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)

    assert letter.message_id == "m-1"
    assert TraceParent.from_headers(letter.headers) == sent
    assert letter.headers["x-virtactor-reason"] == "undecodable"
