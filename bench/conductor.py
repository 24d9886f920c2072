"""The object backend's cost: `instance.save()` of a 3-field change and `Instance.get_by_uuid`,
end to end over RabbitMQ to a conductor on PostgreSQL, against the same UPDATE and SELECT
issued directly through asyncpg in the same run (the floor).

virtactor's path is the whole stack an agent uses: the remotable method -> BusIndirection ->
ComputeClient (envelope, versioned objects) -> RabbitMQ -> the conductor (strict decode, reply
cache, argument checks) -> SqlObjectStore (SQLAlchemy Core on asyncpg) -> PostgreSQL, and the
reply back. The floor is asyncpg alone with a prepared statement: no bus, no objects. Both run
sequentially and 64 at a time from one process, in alternating order, over ROUNDS rounds; the
ratio printed is the median of the per-round cost ratios (virtactor / floor) with its range,
and the extra cost per call in milliseconds. Aim: the bus and the conductor add at most about
one RPC round trip over the floor (compare `bench/rpc.py`'s round trip).

    .venv/bin/python bench/conductor.py [--url amqp://...] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.client import ComputeClient
from agent.conductor import upgrade_db
from agent.conductor.indirection import BusIndirection
from agent.conductor.service import running_conductor
from agent.config import AgentConfig, AmqpSection, ConductorSection
from agent.service import build_transport
from agent.transport import AmqpSettings, AmqpTransport
from schemas import use_indirection
from schemas.objects import Flavor, Instance

SEQUENTIAL = 300
CONCURRENT = 1200
IN_FLIGHT = 64
ROUNDS = 5
INSTANCES = 64


def sample(index: int) -> Instance:
    return Instance(
        uuid=str(uuid.uuid4()),
        name=f"instance-{index:08x}",
        display_name=f"bench guest {index}",
        project_id="bench",
        host="bench-1",
        node="bench-1",
        vm_state="active",
        power_state="running",
        flavor=Flavor(flavorid="m1.small", name="m1.small", memory_mb=2048, vcpus=1, root_gb=20),
        memory_mb=2048,
        vcpus=1,
        root_gb=20,
        metadata={"role": "bench", "tier": "web"},
    )


async def timed(calls: int, in_flight: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Seconds per call of `calls` calls, `in_flight` at a time."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < calls:
            index = next_index
            next_index += 1
            await call(index)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(in_flight):
            group.create_task(worker())
    return (time.perf_counter() - started) / calls


async def main(amqp_url: str, pg_url: str) -> None:
    database = f"virtactor_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    base = pg_url.rsplit("/", 1)[0]
    dsn = f"{base}/{database}"
    prefix = f"bench-cond-{uuid.uuid4().hex[:8]}"
    config = AgentConfig(
        amqp=AmqpSection(url=amqp_url, prefix=prefix, quorum=False),
        conductor=ConductorSection(
            database_url=dsn.replace("postgresql://", "postgresql+asyncpg://")
        ),
    )
    try:
        await upgrade_db(config.conductor.database_url)
        conductor_bus = build_transport(config)
        await conductor_bus.start()
        agent_bus = AmqpTransport(AmqpSettings(url=amqp_url, prefix=prefix, quorum=False))
        await agent_bus.start()
        # The floor gets the conductor's pool size (10 + 10 overflow): 20 connections.
        floor = await asyncpg.create_pool(dsn, min_size=20, max_size=20)
        try:
            async with running_conductor(conductor_bus, config):
                objects = BusIndirection(ComputeClient(agent_bus, announce_interval=None))
                await measure(objects, floor)
        finally:
            await floor.close()
            await agent_bus.aclose()
            await conductor_bus.aclose()
    finally:
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()


async def measure(objects: BusIndirection, floor: asyncpg.Pool) -> None:
    with use_indirection(objects):
        instances = [sample(i) for i in range(INSTANCES)]
        for instance in instances:
            await instance.create()
    # asyncpg prepares each statement once per connection and keeps it.
    update = (
        "UPDATE instances SET task_state = $2, vm_state = $3, updated_at = now() WHERE uuid = $1"
    )
    select = "SELECT * FROM instances WHERE uuid = $1"
    states = ("pausing", "unpausing")

    async def virtactor_save(index: int) -> None:
        instance = instances[index % INSTANCES].obj_clone()
        instance.obj_reset_changes()
        instance.task_state, instance.vm_state = states[index % 2], "active"
        instance.updated_at = None
        with use_indirection(objects):
            await instance.save()

    async def floor_save(index: int) -> None:
        await floor.execute(update, instances[index % INSTANCES].uuid, states[index % 2], "active")

    async def virtactor_get(index: int) -> None:
        with use_indirection(objects):
            await Instance.get_by_uuid(None, instances[index % INSTANCES].uuid)

    async def floor_get(index: int) -> None:
        await floor.fetchrow(select, instances[index % INSTANCES].uuid)

    print(f"object backend over RabbitMQ on PostgreSQL, {ROUNDS} rounds, median ratio (range):")
    for label, ours, reference in (
        ("save() of 3 fields", virtactor_save, floor_save),
        ("get_by_uuid", virtactor_get, floor_get),
    ):
        for mode, calls, in_flight in (
            ("sequential", SEQUENTIAL, 1),
            (f"{IN_FLIGHT} concurrent", CONCURRENT, IN_FLIGHT),
        ):
            ratios, extra, best = [], [], (float("inf"), float("inf"))
            for round_ in range(ROUNDS):
                if round_ % 2:
                    theirs = await timed(calls, in_flight, reference)
                    mine = await timed(calls, in_flight, ours)
                else:
                    mine = await timed(calls, in_flight, ours)
                    theirs = await timed(calls, in_flight, reference)
                ratios.append(mine / theirs)
                extra.append((mine - theirs) * 1e3)
                best = (min(best[0], mine), min(best[1], theirs))
            print(
                f"  {label:<20} {mode:<14} virtactor {best[0] * 1e3:6.3f} ms/call, "
                f"floor {best[1] * 1e3:6.3f} ms/call: {statistics.median(ratios):5.1f}x "
                f"({min(ratios):.1f}-{max(ratios):.1f}), "
                f"+{statistics.median(extra):.3f} ms per call"
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.pg))
