"""The broker drops the agent's and the client's connections mid-flight: nothing is lost or
applied twice, and no call hangs."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from actors import HOST_ADDRESS, Actor, ActorSystem, BlockingExecutor, handler
from agent.client import ComputeClient
from agent.errors import CallTimeout
from agent.rpc.methods import MethodTable, Scope
from agent.rpc.server import Dispatcher
from agent.transport import AmqpSettings, AmqpTransport
from schemas import DecodeLimits, default_registry

from ..conftest import delete_amqp_topology
from .test_rpc_roundtrips import wait_until

pytestmark = pytest.mark.rabbitmq


class CountingHost(Actor):
    def __init__(self, executed: Counter[str]) -> None:
        self.executed = executed

    @handler
    async def record(self, token: str) -> str:
        self.executed[token] += 1
        await asyncio.sleep(0.02)  # keeps requests in flight while the connections drop
        return token


async def broker_connections(prefix: str) -> list[str]:
    """The broker's pids of every connection this test's transports opened (listed before
    the traffic starts: `rabbitmqctl` takes a second or more, the traffic does not wait)."""
    listing = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        "-q",
        "list_connections",
        "pid",
        "client_properties",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await listing.communicate()
    marker = f'{{"connection_name","virtactor:{prefix}"}}'
    pids = []
    for line in out.decode().splitlines()[1:]:
        pid, _, properties = line.partition("\t")
        if marker in properties:
            pids.append(pid)
    return pids


async def close_broker_connections(pids: list[str]) -> None:
    """Close, from the broker side, the connections `pids`, all at once."""
    closers = [
        await asyncio.create_subprocess_exec(
            "rabbitmqctl", "-q", "close_connection", pid, "fault test"
        )
        for pid in pids
    ]
    for pid, closer in zip(pids, closers, strict=True):
        assert await closer.wait() == 0, f"rabbitmqctl could not close {pid}"


async def test_connections_cut_with_200_casts_and_200_calls_in_flight(rabbitmq_url: str) -> None:
    prefix = f"vt-fault-{uuid.uuid4().hex[:8]}"
    settings = AmqpSettings(url=rabbitmq_url, prefix=prefix, reconnect_interval=0.2)
    agent_side, client_side = AmqpTransport(settings), AmqpTransport(settings)
    executed: Counter[str] = Counter()
    system = ActorSystem(executor=BlockingExecutor(max_workers=1, name="fault"))
    system.spawn(HOST_ADDRESS, lambda: CountingHost(executed))
    dispatcher = Dispatcher(
        host="h1",
        system=system,
        methods=MethodTable({Scope.HOST: CountingHost}),
        instance_factory=lambda uuid: CountingHost(executed),
        registry=default_registry,
        manifest=default_registry.manifest(),
        limits=DecodeLimits(),
    )
    try:
        await agent_side.start()
        await client_side.start()
        await agent_side.serve("h1", dispatcher.handle)
        client = ComputeClient(client_side, default_timeout=60, is_admin=True)
        pids = await broker_connections(prefix)
        assert len(pids) >= 2

        calls = [
            asyncio.ensure_future(client.call("h1", "record", {"token": f"call-{i}"}, timeout=45))
            for i in range(200)
        ]
        casts = [
            asyncio.ensure_future(client.cast("h1", "record", {"token": f"cast-{i}"}))
            for i in range(200)
        ]
        await wait_until(lambda: len(executed) >= 40)
        await close_broker_connections(pids)
        # The cut must land mid-flight, or this test shows nothing.
        assert sum(executed.values()) < 400
        call_results = await asyncio.gather(*calls, return_exceptions=True)
        cast_results = await asyncio.gather(*casts, return_exceptions=True)
        assert [r for r in cast_results if r is not None] == []
        await wait_until(lambda: sum(1 for t in executed if t.startswith("cast-")) == 200, 60)
        await asyncio.sleep(0.5)  # a duplicate still queued would be executed by now

        returned = [r for r in call_results if isinstance(r, str)]
        timed_out = [r for r in call_results if isinstance(r, CallTimeout)]
        assert len(returned) + len(timed_out) == 200, [
            r for r in call_results if not isinstance(r, str | CallTimeout)
        ]
        assert returned == [f"call-{i}" for i in range(200) if f"call-{i}" in returned]
        assert {t: n for t, n in executed.items() if n != 1} == {}
        assert all(f"cast-{i}" in executed for i in range(200))
        assert all(token in executed for token in returned)
        print(
            "DEBUG",
            len(returned),
            len(timed_out),
            dispatcher.stats.duplicates,
            dict(Counter(executed.values())),
        )
    finally:
        await system.aclose(timeout=5)
        await client_side.aclose()
        await agent_side.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, ["h1"])
