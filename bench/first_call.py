"""The first call to an agent after it restarted: with its callers' manifests kept
(`[rpc] manifest_store`) against without them, over the local RabbitMQ.

A client that has called an agent names its manifest by digest. An agent that restarted
without its store has never seen that digest: it refuses the call (`UnknownManifestDigest`)
and the client sends it again in full, one more round trip. With the store, the restarted
agent resolves the digest at once. The reference is the same first call against an agent
whose store was removed before its restart (what every restart cost before the store);
the ratio is the median, over ROUNDS restarts, of (first call with the store) / (first
call without), with the refusals each side saw. Target: < 1 (no refusal with the store).

The client has a release's object manifest of its own (one object more than the agent's),
as a control plane of another release would. Both agents run on libvirt's test driver.

    .venv/bin/python bench/first_call.py [--url amqp://guest:guest@127.0.0.1:5672/]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.client import ComputeClient
from agent.config import (
    AgentConfig,
    AgentSection,
    AmqpSection,
    ConductorSection,
    LibvirtSection,
    RpcSection,
)
from agent.rpc.manifest import forget_all
from agent.service import Agent, manifest_store_path
from schemas import ObjectRegistry, VersionedObject, default_registry, fields

ROUNDS = 15


class Widget(VersionedObject):
    OBJ_NAME = "Widget"
    # 1.0: Initial version
    VERSION = "1.0"
    __slots__ = ()

    name: str = fields.String()


def another_release() -> ObjectRegistry:
    registry = ObjectRegistry()
    for name in default_registry:
        registry.register(default_registry.lookup(name))
    registry.register(Widget)
    return registry


async def first_call_after_restart(
    config: AgentConfig, client: ComputeClient, keep_store: bool
) -> tuple[float, int]:
    """Seconds of the first call to a restarted agent, and the calls it refused."""
    forget_all()  # the restarted agent is a new process
    if not keep_store:
        manifest_store_path(config).unlink(missing_ok=True)
    agent = Agent(config)
    await agent.start()
    try:
        await agent.wait_ready(timeout=30)  # time the call, not the agent's start
        started = time.perf_counter()
        await client.get_host_uptime(config.agent.host)
        elapsed = time.perf_counter() - started
        await client.get_host_uptime(config.agent.host)  # the next one goes by digest
        return elapsed, agent.dispatcher.stats.errors
    finally:
        await agent.aclose()


async def main(url: str) -> None:
    prefix = f"bench-first-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as instances:
        config = AgentConfig(
            agent=AgentSection(host="bench-first", instances_path=instances),
            libvirt=LibvirtSection(uri="test:///default"),
            amqp=AmqpSection(url=url, prefix=prefix, quorum=False),
            rpc=RpcSection(subscriber_answer_wait=0.0),
            conductor=ConductorSection(save_records=False),  # no conductor on this bus
        )
        client = await ComputeClient.connect(
            url, prefix=prefix, registry=another_release(), is_admin=True
        )
        try:
            # Teach the agent, then the client, each other's manifests.
            await first_call_after_restart(config, client, keep_store=True)
            kept, lost, refused = [], [], {True: 0, False: 0}
            for round_ in range(ROUNDS):
                for keep in (True, False) if round_ % 2 else (False, True):
                    elapsed, errors = await first_call_after_restart(config, client, keep)
                    (kept if keep else lost).append(elapsed)
                    refused[keep] += errors
        finally:
            await client.aclose()
    ratios = [k / v for k, v in zip(kept, lost, strict=True)]
    print(f"first call after a restart, {ROUNDS} restarts each, median:")
    print(f"  with the store:    {statistics.median(kept) * 1e3:7.2f} ms, refused {refused[True]}")
    print(f"  without the store: {statistics.median(lost) * 1e3:7.2f} ms, refused {refused[False]}")
    print(
        f"ratio (with / without): {statistics.median(ratios):.2f}x "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}); target < 1, no refusal with the store"
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # the refusals it provokes are logged as info
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    asyncio.run(main(parser.parse_args().url))
