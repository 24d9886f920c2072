"""RPC speed over the local RabbitMQ: virtactor's call path against raw aio-pika request/reply.

Both sides run in this process against the same broker, with the same queue type (a durable
quorum queue per host) and RabbitMQ direct reply-to. The reference is the floor: aio-pika
publishing a plain msgpack body and a consumer echoing it back, with no envelope, objects,
validation, de-duplication or actors. virtactor's path is the whole stack: ComputeClient ->
envelope with versioned objects -> AmqpTransport -> Dispatcher (strict decode, reply cache,
argument checks) -> host actor -> reply back-levelled to the caller.

Measured for a small payload and a realistic `Instance` (flavor, metadata, 3 disks, 2 NICs),
echoed back, and for an `Instance` sent with a small result back (the shape of most driver
calls): (a) sequential calls and (b) 64 concurrent calls from one client. Each scenario runs
five paired rounds (the reference and virtactor back to back, in alternating order, so a burst
of load elsewhere on the machine hits both sides of a pair); the ratio is the median of the
pairs' rate ratios, printed with their range. Rates, p50/p99 latency and this process's CPU
per call come from each side's best round. Target: virtactor >= 0.8x the raw rate in both.

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

SEQUENTIAL = 400
CONCURRENT = 1500
ROUNDS = 5
IN_FLIGHT = 64


class EchoHost(Actor):
    @handler
    async def echo(self, payload: Any) -> Any:
        return payload

    @handler
    async def accept(self, payload: Any) -> Any:
        return "ok"


Call = Callable[[Any], Awaitable[Any]]


async def measure(
    call: Call, payload: Any, total: int, in_flight: int
) -> tuple[float, list[float], float]:
    """(calls/s, latencies, CPU seconds per call of this process)."""
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
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return total / elapsed, latencies, cpu / total


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
            request = msgpack.unpackb(message.body, timestamp=3)
            small = message.headers.get("small") if message.headers else False
            body = msgpack.packb("ok" if small else request, datetime=True)
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

    async def call(self, payload: Any, reply_small: bool = False) -> Any:
        correlation_id = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        await self.client.default_exchange.publish(
            aio_pika.Message(
                msgpack.packb(payload, datetime=True),
                correlation_id=correlation_id,
                reply_to="amq.rabbitmq.reply-to",
                headers={"small": True} if reply_small else None,
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
    client = ComputeClient(client_side, default_timeout=30, is_admin=True)

    async def virtactor_echo(payload: Any) -> Any:
        return await client.call("bench", "echo", {"payload": payload})

    async def virtactor_accept(payload: Any) -> Any:
        return await client.call("bench", "accept", {"payload": payload})

    async def raw_accept(payload: Any) -> Any:
        await raw.call(payload, reply_small=True)

    instance = build_instance()
    plain_instance = as_plain(instance.to_primitive())
    scenarios = [
        ("small echo", virtactor_echo, "hello", raw.call, "hello"),
        ("Instance echo", virtactor_echo, instance, raw.call, plain_instance),
        ("Instance->ok", virtactor_accept, instance, raw_accept, plain_instance),
    ]
    print(f"RPC over {url.rsplit('@', 1)[-1]} (quorum queue, direct reply-to), one process")
    print(
        f"{'payload':<14} {'mode':<14} {'raw calls/s':>11} {'virtactor':>9} {'ratio':>6}"
        f" {'range':>11}"
        f" {'raw p50/p99 ms':>15} {'va p50/p99 ms':>14} {'cpu us/call raw/va':>19}"
    )
    ratios = []
    try:
        for label, va_call, va_payload, raw_call, raw_payload in scenarios:
            for mode, total, in_flight in (
                ("sequential", SEQUENTIAL, 1),
                (f"{IN_FLIGHT} concurrent", CONCURRENT, IN_FLIGHT),
            ):
                raw_best: Any = None
                va_best: Any = None
                round_ratios = []
                for round_number in range(ROUNDS):
                    # Paired rounds, in alternating order: a burst of load elsewhere on the
                    # machine (or a slow drift) hits both sides of the pair alike.
                    if round_number % 2:
                        va_run = await measure(va_call, va_payload, total, in_flight)
                        raw_run = await measure(raw_call, raw_payload, total, in_flight)
                    else:
                        raw_run = await measure(raw_call, raw_payload, total, in_flight)
                        va_run = await measure(va_call, va_payload, total, in_flight)
                    round_ratios.append(va_run[0] / raw_run[0])
                    raw_best = max(raw_best or raw_run, raw_run, key=lambda r: r[0])
                    va_best = max(va_best or va_run, va_run, key=lambda r: r[0])
                ratio = statistics.median(round_ratios)
                ratios.append(ratio)
                print(
                    f"{label:<14} {mode:<14} {raw_best[0]:>11.0f} {va_best[0]:>9.0f} {ratio:>5.2f}x"
                    f" {min(round_ratios):>5.2f}-{max(round_ratios):<5.2f}"
                    f" {fmt(raw_best[1]):>15} {fmt(va_best[1]):>14}"
                    f" {raw_best[2] * 1e6:>9.0f}/{va_best[2] * 1e6:<9.0f}"
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
