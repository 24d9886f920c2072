"""The embedded-default demo: the whole agent, with nothing running beside it.

An agent starts on the in-process bus over libvirt's built-in `test:///default` hypervisor (or
the URI given), adopts the guests it finds, and a `ComputeClient` on the same bus drives it by
messages, exactly as a control plane would over RabbitMQ: host resources, the guests and their
state, and the events the agent publishes.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from typing import TextIO

from agent.client import ComputeClient
from agent.config import AgentConfig, AgentSection, LibvirtSection
from agent.service import Agent
from agent.transport import InProcessBus

DEMO_HOST = "demo-host"


async def run(uri: str, out: TextIO, host: str = DEMO_HOST) -> int:
    config = AgentConfig(
        agent=AgentSection(host=host, instances_path=tempfile.gettempdir(), heartbeat_interval=0.5),
        libvirt=LibvirtSection(uri=uri),
    )
    bus = InProcessBus()
    await bus.start()
    client = ComputeClient(bus, default_timeout=30)
    heartbeats = await client.subscribe(f"host.{host}.*")
    try:
        async with Agent(config, transport=bus) as agent:
            adopted = await agent.wait_ready(timeout=60)
            out.write(f"virtactor demo: agent {host!r} on {uri}, embedded bus\n")
            out.write(f"  adopted {len(adopted)} running guest(s) without touching them\n")
            await _show_host(client, host, out)
            await _show_guests(client, host, out)
            event = await asyncio.wait_for(anext(aiter(heartbeats)), 30)
            out.write(
                f"  event {event.topic}: {type(event.payload).__name__} from {event.sender_host}\n"
            )
    finally:
        await heartbeats.aclose()
        await bus.aclose()
    return 0


async def _show_host(client: ComputeClient, host: str, out: TextIO) -> None:
    nodes = await client.get_available_nodes(host)
    node = await client.get_available_resource(host, nodes[0])
    cpu = json.loads(node.cpu_info)
    out.write(
        f"  node {node.hypervisor_hostname}: {node.hypervisor_type} {node.hypervisor_version}, "
        f"{node.vcpus} vCPUs ({cpu.get('arch', '?')}), {node.memory_mb} MiB, "
        f"{node.local_gb} GiB disk, {node.running_vms} running\n"
    )


async def _show_guests(client: ComputeClient, host: str, out: TextIO) -> None:
    names = await client.list_instances(host)
    out.write(f"  guests: {', '.join(sorted(names)) or 'none'}\n")
    for uuid in sorted(await client.list_instance_uuids(host)):
        info = await client.get_info(host, uuid)
        out.write(f"  guest {uuid}: {info.state}, {info.num_cpu} vCPU, {info.mem_kb // 1024} MiB\n")
