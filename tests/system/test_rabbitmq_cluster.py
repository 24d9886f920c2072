"""A three-node RabbitMQ cluster loses the node the agent is connected to, by kill -9, and
gets it back, under load: nothing is lost, nothing is applied twice, every call is answered
or ends in a typed error.

Three nodes of this session (tests/system/rabbitmq_nodes.py) are clustered; the agent's
queue is a quorum queue. The agent (libvirt's test driver) names the nodes A,B,C in its
`[amqp] url`, so it connects to A; the client names them B,C,A, so it is on B. The client
runs state-changing operations (pause and unpause, a new metadata key each) and reads on a
few instances, 8 at a time, each sent until answered under its own message id, as in
tests/agent/rpc/test_broker_faults.py and bench/broker_faults.py. A quarter of the way in,
A is killed; once the agent has moved, A is started again and rejoins the cluster; more
operations follow. Counted: operations not answered (lost), answered metadata keys missing
from the instance (lost), message ids the agent ran more than once (applied twice), and the
error class each failed attempt ended in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.client import ComputeClient
from agent.config import AmqpSection, ConductorSection, ResourcesSection
from agent.service import Agent
from bench.broker_faults import Runs, calls_of
from schemas.errors import VirtactorError
from schemas.objects import Instance
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import embedded_config, make_root_image, remove_test_domain
from tests.conftest import missing_component
from tests.system.rabbitmq_nodes import NodeError, NodeGroup, RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.asyncio(loop_scope="session")]

HOST = "cluster-host"
INSTANCES = 8  # one worker each: 8 operations at a time
OPERATIONS = 800  # before and during the fault
AFTER = 200  # once the killed node is back
CALL_TIMEOUT = 10.0
GIVE_UP = 90.0
# Errors an attempt may end in while a node is away; the operation is sent again.
TRANSIENT = ("CallTimeout", "TransportError", "Unroutable")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    group = NodeGroup(tmp_path_factory.mktemp("cluster"))
    suffix = uuid.uuid4().hex[:6]
    nodes = [group.node(f"vt-cl{n}-{suffix}") for n in (1, 2, 3)]
    try:
        for node in nodes:
            node.start()
        for node in nodes[1:]:
            node.join(nodes[0])
        status = nodes[0].ctl("cluster_status", "--formatter", "json")
        assert all(node.nodename in status for node in nodes), status
    except (NodeError, OSError, AssertionError) as exc:
        group.kill_all()
        missing_component(
            f"a three-node RabbitMQ cluster of this session ({exc})",
            "deploy/local/system-packages.sh test (installs rabbitmq-server)",
        )
    try:
        yield nodes
    finally:
        group.kill_all()


def cluster_url(nodes: list[RabbitNode]) -> str:
    return ",".join(node.url for node in nodes)


async def connection_ports(node: RabbitNode) -> list[int]:
    """The server ports of the cluster's client connections (each node has its own)."""
    out = await asyncio.to_thread(node.ctl, "list_connections", "port")
    return sorted(int(line) for line in out.split() if line.isdigit())


@dataclass
class Tally:
    errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    keys: dict[str, set[str]] = field(default_factory=dict)  # answered metadata keys
    lost: int = 0
    done: int = 0
    quarter: asyncio.Event = field(default_factory=asyncio.Event)


async def answered(
    client: ComputeClient, method: str, args: dict[str, Any], tally: Tally
) -> tuple[bool, Any]:
    """Send until answered under one message id: (answered, result or the agent's typed
    refusal). A failed attempt must end in a typed error: anything else fails the test."""
    message_id = f"cluster-{uuid.uuid4()}"
    deadline = time.monotonic() + GIVE_UP
    target = args["instance"].uuid
    while time.monotonic() < deadline:
        try:
            call = client.with_options(message_id=message_id, timeout=CALL_TIMEOUT)
            return True, await call.call(HOST, method, args, instance=target)
        except VirtactorError as exc:
            tally.errors[type(exc).__name__] += 1
            if not exc.retryable and type(exc).__name__ not in TRANSIENT:
                return True, exc
            await asyncio.sleep(0.5)
    return False, None


async def operations(
    client: ComputeClient, guests: list[Instance], numbers: range, tally: Tally
) -> None:
    """`numbers` operations, one worker per guest (no two race on one guest's state)."""

    async def worker(at: int) -> None:
        guest = guests[at]
        for number in numbers[at :: len(guests)]:
            kind = random.choice(["pause_unpause", "get_info", "metadata"])
            for method, args in calls_of(kind, number, guest):
                ok, result = await answered(client, method, args, tally)
                if not ok:
                    tally.lost += 1
                    continue
                refused = isinstance(result, Exception)
                tally.outcomes[type(result).__name__ if refused else "answered"] += 1
                if method == "change_instance_metadata" and not refused:
                    tally.keys[guest.uuid].add(next(iter(args["diff"])))
            tally.done += 1
            if tally.done >= OPERATIONS // 4:
                tally.quarter.set()

    async with asyncio.TaskGroup() as workers:
        for at in range(len(guests)):
            workers.create_task(worker(at))


async def remove_domains(uuids: list[str]) -> None:
    for domain_uuid in uuids:
        await asyncio.to_thread(remove_test_domain, domain_uuid)


async def kill_and_restart(
    cluster: list[RabbitNode], tally: Tally, events: list[str], started: float
) -> None:
    """Once a quarter of the operations are done, kill -9 A (the agent's node); once the
    agent is connected elsewhere, start A again (it rejoins the cluster)."""
    a, b, _ = cluster
    await tally.quarter.wait()
    await asyncio.to_thread(a.kill)
    events.append(f"{time.monotonic() - started:.1f}s A killed after {tally.done} operations")
    for _ in range(120):  # a minute: the agent reconnects every reconnect_interval
        ports = await connection_ports(b)
        if len(ports) == 2 and a.amqp_port not in ports:
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError(f"the agent did not move off the killed node: ports {ports}")
    events.append(f"{time.monotonic() - started:.1f}s agent on {ports} after {tally.done}")
    await asyncio.to_thread(a.start)
    status = json.loads(await asyncio.to_thread(b.ctl, "cluster_status", "--formatter", "json"))
    assert a.nodename in status["running_nodes"], status  # a member again, not a new node
    events.append(f"{time.monotonic() - started:.1f}s A back after {tally.done} operations")


async def test_killing_the_agents_node_loses_nothing_and_applies_nothing_twice(
    cluster: list[RabbitNode], tmp_path: Path
) -> None:
    random.seed(7)
    a, b, c = cluster
    prefix = f"vt-cluster-{uuid.uuid4().hex[:8]}"
    await make_root_image(tmp_path)
    config = dataclasses.replace(
        embedded_config(tmp_path, HOST),
        amqp=AmqpSection(url=cluster_url([a, b, c]), prefix=prefix),
        conductor=ConductorSection(save_records=False),
        resources=ResourcesSection(audit_interval=3600),
    )
    guests = [instance(str(uuid.uuid4()), name=f"cluster-{n}") for n in range(INSTANCES)]
    tally = Tally(keys={guest.uuid: set() for guest in guests})
    agent = Agent(config)
    events: list[str] = []
    async with contextlib.AsyncExitStack() as cleanup:
        await agent.start()
        cleanup.push_async_callback(delete_amqp_topology, b.url, prefix, [HOST])
        cleanup.push_async_callback(remove_domains, [guest.uuid for guest in guests])
        cleanup.push_async_callback(agent.aclose)
        client = await ComputeClient.connect(
            cluster_url([b, c, a]),
            prefix=prefix,
            default_timeout=CALL_TIMEOUT,
            announce_interval=None,
        )
        cleanup.push_async_callback(client.aclose)
        await agent.wait_ready(timeout=60)
        runs = Runs(agent)
        assert await connection_ports(b) == sorted([a.amqp_port, b.amqp_port])
        for guest in guests:
            ok, spawned = await answered(
                client, "spawn", {"instance": guest, "image_meta": image_meta()}, tally
            )
            assert ok and not isinstance(spawned, Exception), spawned

        started = time.monotonic()

        async with asyncio.TaskGroup() as running:
            running.create_task(kill_and_restart(cluster, tally, events, started))
            running.create_task(operations(client, guests, range(OPERATIONS), tally))
        await operations(client, guests, range(OPERATIONS, OPERATIONS + AFTER), tally)
        elapsed = time.monotonic() - started

        missing = 0
        for guest in guests:
            ok, changed = await answered(
                client, "change_instance_metadata", {"instance": guest, "diff": {}}, tally
            )
            assert ok and not isinstance(changed, Exception), changed
            missing += len(tally.keys[guest.uuid] - set((changed.metadata or {}).keys()))
        twice = {message_id: n for message_id, n in runs.count.items() if n > 1}
        print(
            f"\ncluster fault: {OPERATIONS + AFTER} operations in {elapsed:.1f}s; "
            f"{'; '.join(events)}\n  answered: {dict(tally.outcomes)}\n"
            f"  attempts ended in: {dict(tally.errors) or 'nothing but answers'}\n"
            f"  lost: {tally.lost} unanswered, {missing} answered metadata keys missing\n"
            f"  applied twice: {len(twice)}; duplicates answered from the reply cache: "
            f"{agent.dispatcher.stats.duplicates}"
        )
        assert len(events) == 3, events
        assert (tally.lost, missing, twice) == (0, 0, {})
        assert set(tally.outcomes) == {"answered"}, tally.outcomes
        assert set(tally.errors) <= set(TRANSIENT), tally.errors
        for guest in guests:
            ok, _ = await answered(client, "destroy", {"instance": guest}, tally)
            assert ok
