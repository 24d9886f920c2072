"""RPC speed over the local RabbitMQ: virtactor's call path against raw aio-pika request/reply.

Both sides run in this process against the same broker, with the same queue type (a durable
quorum queue per host) and RabbitMQ direct reply-to. The reference is the floor: aio-pika
publishing a plain msgpack body and a consumer echoing it back, with no envelope, objects,
validation, de-duplication or actors. virtactor's path is the whole stack: ComputeClient ->
envelope with versioned objects -> AmqpTransport -> Dispatcher (strict decode, reply cache,
argument checks) -> host actor -> reply back-levelled to the caller.

Measured for a small payload and a realistic `Instance` (flavor, metadata, 3 disks, 2 NICs):
(a) sequential calls and (b) 64 concurrent calls from one client. Prints calls/s, p50 and
p99 latency and the rate ratio (target: virtactor >= 0.8x the raw rate in both).

    .venv/bin/python bench/rpc.py [--url amqp://guest:guest@127.0.0.1:5672/]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import HOST_ADDRESS, Actor, ActorSystem, BlockingExecutor, handler
from agent.client import ComputeClient
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.server import Dispatcher
from agent.transport import AmqpSettings, AmqpTransport, Names
from bench.codec import as_plain, build_instance
from schemas import DecodeLimits, default_registry

SEQUENTIAL = 600
CONCURRENT = 3000
IN_FLIGHT = 64


class EchoHost(Actor):
    @handler
    async def echo(self, payload: Any) -> Any:
        return payload


Call = Callable[[Any], Awaitable[Any]]


async def measure(
    call: Call, payload: Any, total: int, in_flight: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            start = time.perf_counter()
            await call(payload)
            latencies.append(time.perf_counter() - start)

    for _ in range(20):  # warm-up
        await call(payload)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return total / (time.perf_counter() - start), latencies


class RawRpc:
    """The floor: aio-pika request/reply with msgpack bodies and nothing else."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.queue_name = f"{prefix}.raw"
        self.pending: dict[str, asyncio.Future[bytes]] = {}

    async def start(self) -> None:
        self.server_conn = await aio_pika.connect_robust(self.url)
        self.client_conn = await aio_pika.connect_robust(self.url)
        server = await self.server_conn.channel()
        await server.set_qos(prefetch_count=64)
        queue = await server.declare_queue(
            self.queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        replies = server.default_exchange

        async def serve(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            body = msgpack.packb(msgpack.unpackb(message.body, timestamp=3), datetime=True)
            await replies.publish(
                aio_pika.Message(body, correlation_id=message.correlation_id),
                routing_key=message.reply_to or "",
                mandatory=False,
            )
            await message.ack()

        await queue.consume(serve)
        self.client = await self.client_conn.channel()
        reply_queue = await self.client.declare_queue("amq.rabbitmq.reply-to", passive=True)
        await reply_queue.consume(self.on_reply, no_ack=True)

    async def on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        future = self.pending.pop(message.correlation_id or "", None)
        if future is not None:
            future.set_result(message.body)

    async def call(self, payload: Any) -> Any:
        correlation_id = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        await self.client.default_exchange.publish(
            aio_pika.Message(
                msgpack.packb(payload, datetime=True),
                correlation_id=correlation_id,
                reply_to="amq.rabbitmq.reply-to",
            ),
            routing_key=self.queue_name,
        )
        return msgpack.unpackb(await asyncio.wait_for(future, 30), timestamp=3)

    async def aclose(self) -> None:
        channel = await self.server_conn.channel()
        await channel.queue_delete(self.queue_name)
        await self.client_conn.close()
        await self.server_conn.close()


async def run(url: str) -> None:
    prefix = f"vt-bench-{uuid.uuid4().hex[:8]}"
    raw = RawRpc(url, prefix)
    await raw.start()
    settings = AmqpSettings(url=url, prefix=prefix)
    agent_side, client_side = AmqpTransport(settings), AmqpTransport(settings)
    system = ActorSystem(executor=BlockingExecutor(max_workers=2, name="bench"))
    system.spawn(HOST_ADDRESS, EchoHost)
    dispatcher = Dispatcher(
        host="bench",
        system=system,
        methods=MethodTable({Scope.HOST: EchoHost}),
        instance_factory=lambda uuid: EchoHost(),
        registry=default_registry,
        manifest=default_registry.manifest(),
        limits=DecodeLimits(),
    )
    await agent_side.start()
    await client_side.start()
    await agent_side.serve("bench", dispatcher.handle)
    client = ComputeClient(client_side, default_timeout=30)

    async def virtactor_call(payload: Any) -> Any:
        return await client.call("bench", "echo", {"payload": payload})

    instance = build_instance()
    payloads = {
        "small": ("hello", "hello"),
        "Instance": (instance, as_plain(instance.to_primitive())),
    }
    print(f"RPC over {url.rsplit('@', 1)[-1]} (quorum queue, direct reply-to), one process")
    print(
        f"{'payload':<9} {'mode':<14} {'raw calls/s':>12} {'virtactor':>10} {'ratio':>6}"
        f" {'raw p50/p99 ms':>15} {'virtactor p50/p99 ms':>21}"
    )
    ratios = []
    try:
        for label, (obj, plain) in payloads.items():
            for mode, total, in_flight in (
                ("sequential", SEQUENTIAL, 1),
                (f"{IN_FLIGHT} concurrent", CONCURRENT, IN_FLIGHT),
            ):
                raw_rate, raw_lat = await measure(raw.call, plain, total, in_flight)
                va_rate, va_lat = await measure(virtactor_call, obj, total, in_flight)
                ratio = va_rate / raw_rate
                ratios.append(ratio)
                print(
                    f"{label:<9} {mode:<14} {raw_rate:>12.0f} {va_rate:>10.0f} {ratio:>5.2f}x"
                    f" {fmt(raw_lat):>15} {fmt(va_lat):>21}"
                )
    finally:
        await system.aclose(timeout=5)
        await client_side.aclose()
        await agent_side.aclose()
        await raw.aclose()
        await cleanup(url, prefix)
    print(f"lowest ratio {min(ratios):.2f}x (target >= 0.80x)")


def fmt(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"{p50:.2f}/{p99:.2f}"


async def cleanup(url: str, prefix: str) -> None:
    names = Names(prefix)
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in (names.dead_letter_queue, names.host_queue("bench")):
            await channel.queue_delete(queue)
        for exchange in (names.commands, names.broadcast, names.events, names.dead_letter_exchange):
            await channel.exchange_delete(exchange)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    asyncio.run(run(parser.parse_args().url))
