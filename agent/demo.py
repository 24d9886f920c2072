"""The embedded-default demo: the whole agent, with nothing running beside it.

An agent starts on the in-process bus over libvirt's built-in `test:///default` hypervisor (or
the URI given), adopts the guests it finds, and a `ComputeClient` on the same bus drives it by
messages, exactly as a control plane would over RabbitMQ: host resources, the guests and their
state, then a new guest spawned from a (blank) image, paused, resumed, suspended, resumed and
destroyed, with the state events the agent published for it, in order.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from agent.client import ComputeClient, EventStream
from agent.config import AgentConfig, AgentSection, GuestSection, LibvirtSection
from agent.service import Agent
from agent.transport import InProcessBus
from agent.virt import qemu_img
from schemas.objects import Flavor, ImageMeta, ImageMetaProps, Instance

DEMO_HOST = "demo-host"
DEMO_IMAGE = "0f5e3c1a-7d4b-4b8e-9c2a-1d6f0e4b5a77"
DEMO_GUEST = "9b2d6f1e-3c4a-4e5b-8f7a-2c1d0e9b8a66"


async def run(uri: str, out: TextIO, host: str = DEMO_HOST) -> int:
    with tempfile.TemporaryDirectory(prefix="virtactor-demo-") as scratch:
        return await _run(uri, out, host, Path(scratch))


async def _run(uri: str, out: TextIO, host: str, scratch: Path) -> int:
    images = scratch / "images"
    images.mkdir()
    (scratch / "instances").mkdir()
    await asyncio.to_thread(
        qemu_img.run, ["create", "-q", "-f", "qcow2", str(images / DEMO_IMAGE), "8M"]
    )
    config = AgentConfig(
        agent=AgentSection(
            host=host, instances_path=str(scratch / "instances"), heartbeat_interval=0.5
        ),
        libvirt=LibvirtSection(uri=uri),
        guest=GuestSection(images_path=str(images), virt_type="qemu", cpu_mode="none"),
    )
    bus = InProcessBus()
    await bus.start()
    client = ComputeClient(bus, default_timeout=30)
    heartbeats = await client.subscribe(f"host.{host}.heartbeat")
    try:
        async with Agent(config, transport=bus) as agent:
            adopted = await agent.wait_ready(timeout=60)
            out.write(f"virtactor demo: agent {host!r} on {uri}, embedded bus\n")
            out.write(f"  adopted {len(adopted)} running guest(s) without touching them\n")
            await _show_host(client, host, out)
            await _show_guests(client, host, out)
            event = await asyncio.wait_for(anext(aiter(heartbeats)), 30)
            kind = type(event.payload).__name__
            out.write(f"  event {event.topic}: {kind} from {event.sender_host}\n")
            async with await client.subscribe(f"instance.{DEMO_GUEST}.state") as states:
                await _walk_a_guest(client, host, out)
                await _show_states(states, out)
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


async def _walk_a_guest(client: ComputeClient, host: str, out: TextIO) -> None:
    guest = Instance(
        uuid=DEMO_GUEST,
        name="demo-guest",
        display_name="a guest of the demo",
        vm_state="building",
        flavor=Flavor(flavorid="m1.tiny", name="m1.tiny", memory_mb=64, vcpus=1, root_gb=1),
        memory_mb=64,
        vcpus=1,
        root_gb=1,
        image_ref=DEMO_IMAGE,
    )
    image = ImageMeta(id=DEMO_IMAGE, name="blank", disk_format="qcow2", properties=ImageMetaProps())
    steps: list[tuple[str, Callable[[], Awaitable[Instance]]]] = [
        ("spawn", lambda: client.spawn(host, guest, image)),
        ("pause", lambda: client.pause(host, guest)),
        ("unpause", lambda: client.unpause(host, guest)),
        ("suspend", lambda: client.suspend(host, guest)),
        ("resume", lambda: client.resume(host, guest)),
    ]
    for name, step in steps:
        after = await step()
        out.write(f"  {name:<8} -> vm_state {after.vm_state}, power_state {after.power_state}\n")
    await client.destroy(host, guest, destroy_disks=True)
    out.write("  destroy  -> gone\n")


async def _show_states(states: EventStream, out: TextIO) -> None:
    """The guest's state events as published, until the bus has been quiet for a moment."""
    changes: list[str] = []
    stream = aiter(states)
    while True:
        try:
            event = await asyncio.wait_for(anext(stream), 1.0)
        except TimeoutError:
            break
        fields = event.payload.obj_get_changes()
        shown = {k: fields[k] for k in ("vm_state", "task_state", "power_state") if k in fields}
        changes.append(", ".join(f"{k}={v}" for k, v in shown.items()))
    out.write(f"  {len(changes)} state events for the guest, in order:\n")
    for change in changes:
        out.write(f"    {change}\n")
