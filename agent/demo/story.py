"""The demo's story, step by step and timed: hosts and their resources, a guest spawned on
demo-a with its events as they arrive, a volume attached, the resources again, a live
migration to demo-b with a progress bar (real hosts only), the guest destroyed, and a summary
of what was started and how it was cleaned up. Every call goes over the bus, by messages."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import libvirt
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.instance.errors import NotSupported
from agent.client import ComputeClient, EventStream
from agent.demo.choice import Choice, DemoError
from agent.demo.deployment import AGENTS, Deployment
from agent.demo.hosts import DemoHost
from agent.demo.ledger import Ledger
from agent.virt import qemu_img
from schemas.objects import (
    Flavor,
    ImageMeta,
    ImageMetaProps,
    Instance,
    InstanceInfo,
    LifecycleEvent,
    Migration,
    MigrationProgress,
    VolumeConnection,
    VolumeConnectionData,
)

DEMO_IMAGE = "0f5e3c1a-7d4b-4b8e-9c2a-1d6f0e4b5a77"
ENDED = ("completed", "failed", "cancelled", "error")
MIGRATION_TIMEOUT = 60.0
MIB = 1024 * 1024
# Under /var/tmp: QEMU runs as an unprivileged user and opens the guest's files by path, so
# they live where it can traverse (a private /tmp may not be the one libvirtd sees).
FILES_PARENT = Path("/var/tmp")


class MigrationFailed(DemoError):
    """The live migration ended in another status than completed."""


class Story:
    """Prints each step, its result and its duration on `console`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.begun = time.monotonic()
        self.number = 0

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[list[str]]:
        """A numbered, timed step; the caller appends its one-line result to the list."""
        self.number += 1
        self.console.rule(f"[bold]{self.number}. {title}", align="left")
        result: list[str] = []
        started = time.monotonic()
        try:
            yield result
        except BaseException:
            self.console.print(f"✗ {title} ({time.monotonic() - started:.1f}s)")
            raise
        took = time.monotonic() - started
        self.console.print(f"✓ {result[0] if result else title} ({took:.1f}s)")

    def elapsed(self) -> float:
        return time.monotonic() - self.begun


def console_for(out: TextIO) -> Console:
    wide = None if out.isatty() else 110
    return Console(file=out, width=wide, highlight=False, soft_wrap=True)


def make_files() -> Path:
    """The demo's directory: images/, instances/, snapshots/, volumes/ (blocking)."""
    root = Path(tempfile.mkdtemp(prefix="virtactor-demo-", dir=FILES_PARENT))
    root.chmod(0o755)
    for name in ("images", "instances", "snapshots", "volumes"):
        (root / name).mkdir()
        (root / name).chmod(0o755)
    # A blank disk, no OS: still a real QEMU process, which is all a live migration needs.
    qemu_img.run(["create", "-q", "-f", "qcow2", str(root / "images" / DEMO_IMAGE), "8M"])
    return root


def remove_files(root: Path) -> None:
    shutil.rmtree(root)


def header(console: Console, bus: Choice, hosts: Choice) -> None:
    lines = [f"bus:   {bus.reason}", f"hosts: {hosts.reason}"]
    if hosts.kind == "test":
        lines.append("[bold yellow]test driver: no real guests, no live migration")
    console.print(Panel("\n".join(lines), title="virtactor demo", expand=False))


async def show_resources(client: ComputeClient, console: Console, title: str) -> str:
    table = Table(title=title, title_justify="left")
    for column in ("agent", "hypervisor", "vCPUs used", "memory MiB used", "disk GiB used"):
        table.add_column(column)
    table.add_column("guests", justify="right")
    used = []
    for name in AGENTS:
        nodes = await client.get_available_nodes(name)
        hypervisor = await client.get_available_resource(name, nodes[0])
        node = await client.get_compute_node(name)  # the tracker's, with what guests claim
        table.add_row(
            name,
            f"{hypervisor.hypervisor_type} {hypervisor.hypervisor_hostname}",
            f"{node.vcpus_used} / {node.vcpus}",
            f"{node.memory_mb_used} / {node.memory_mb}",
            f"{node.local_gb_used} / {node.local_gb}",
            str(node.running_vms),
        )
        used.append(f"{name} {node.memory_mb_used} MiB")
    console.print(table)
    return ", ".join(used)


def demo_guest(memory_mb: int, uuid: str) -> Instance:
    flavor = Flavor(flavorid="demo", name="demo", memory_mb=memory_mb, vcpus=1, root_gb=1)
    return Instance(
        uuid=uuid,
        name="demo-guest",
        display_name="the demo's guest",
        vm_state="building",
        flavor=flavor,
        memory_mb=memory_mb,
        vcpus=1,
        root_gb=1,
        image_ref=DEMO_IMAGE,
    )


def describe(payload: object) -> str:
    """One event's payload in a few words."""
    if isinstance(payload, Instance):
        changes = payload.obj_get_changes()
        fields = ("vm_state", "task_state", "power_state", "host")
        shown = ", ".join(f"{k}={changes[k]}" for k in fields if k in changes)
        return shown or "saved " + ", ".join(sorted(changes))
    if isinstance(payload, LifecycleEvent):
        return f"libvirt: {payload.transition}"
    if isinstance(payload, InstanceInfo):
        return f"power {payload.state}"
    return type(payload).__name__


async def print_events(stream: EventStream, story: Story) -> None:
    """Each event of the guest as it arrives, until cancelled."""
    async for event in stream:
        kind = event.topic.rsplit(".", 1)[-1]
        story.console.print(
            f"  [dim]{story.elapsed():5.1f}s[/] event {kind:<11} from {event.sender_host}: "
            f"{describe(event.payload)}"
        )


async def migrate(client: ComputeClient, guest: Instance, console: Console) -> Migration:
    """Live-migrate `guest` from demo-a to demo-b, following its events with a progress bar."""
    migration = Migration(
        uuid=str(uuidlib.uuid4()),
        instance_uuid=guest.uuid,
        migration_type="live-migration",
        status="queued",
    )
    columns = (
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    async with await client.subscribe(f"migration.{migration.uuid}.*") as stream:
        await client.live_migration(AGENTS[0], guest, AGENTS[1], migration)
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("queued", total=100)
            async with asyncio.timeout(MIGRATION_TIMEOUT):
                async for event in stream:
                    payload = event.payload
                    if isinstance(payload, MigrationProgress):
                        bar.update(
                            task,
                            completed=payload.percent,
                            description=f"{payload.status}, pass {payload.iteration}",
                        )
                    elif isinstance(payload, Migration):
                        bar.update(task, description=str(payload.status))
                        if payload.status in ENDED:
                            if payload.status == "completed":
                                bar.update(task, completed=100)
                            return payload
    raise MigrationFailed("the event stream ended before the migration did")


def domain_on(uri: str, uuid: str) -> bool:
    """Whether a domain `uuid` is defined or running on `uri` (blocking)."""
    conn = libvirt.open(uri)
    try:
        conn.lookupByUUIDString(uuid)
        return True
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise
    finally:
        conn.close()


async def where_is(uuid: str, hosts: dict[str, DemoHost]) -> list[str]:
    """The agents whose host has domain `uuid`."""
    return [
        name for name, host in hosts.items() if await asyncio.to_thread(domain_on, host.uri, uuid)
    ]


def remove_domain(uri: str, uuid: str) -> bool:
    """Destroy and undefine domain `uuid` on `uri` if it is there; whether it was (blocking)."""
    conn = libvirt.open(uri)
    try:
        try:
            dom = conn.lookupByUUIDString(uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.undefine()
        return True
    finally:
        conn.close()


async def tell(
    deployment: Deployment, story: Story, root: Path, guest_uuid: str, ledger: Ledger
) -> None:
    """The story's steps from the resources to the destroy of guest `guest_uuid`, migrated
    when both hosts are real. The guest is in `ledger` from its spawn on, and marked cleaned
    up once no host has its domain."""
    real = not any(host.uri.startswith("test:") for host in deployment.hosts.values())
    client, console = deployment.client, story.console
    with story.step("hosts and their resources") as result:
        result.append(f"resources: {await show_resources(client, console, 'before')}")
    guest = demo_guest(128 if real else 64, guest_uuid)
    image = ImageMeta(id=DEMO_IMAGE, name="blank", disk_format="qcow2", properties=ImageMetaProps())
    async with await client.subscribe(f"instance.{guest.uuid}.*") as events:
        # Owned here and stopped before the stream closes; not in a TaskGroup, so a failed
        # step's error reaches the caller as itself, not in an ExceptionGroup.
        printer = asyncio.create_task(print_events(events, story), name="demo-events")
        try:
            await _walk(deployment, story, root, guest, image, ledger, real)
            await asyncio.sleep(0.5)  # the last events arrive
        finally:
            printer.cancel()
            await asyncio.gather(printer, return_exceptions=True)


async def _walk(
    deployment: Deployment,
    story: Story,
    root: Path,
    guest: Instance,
    image: ImageMeta,
    ledger: Ledger,
    real: bool,
) -> None:
    client, console = deployment.client, story.console
    guest_entry = ledger.started("guest", f"{guest.name} {guest.uuid}")
    with story.step(f"spawn a guest on {AGENTS[0]}") as result:
        spawned = await client.spawn(AGENTS[0], guest, image)
        result.append(
            f"spawned {guest.name} {guest.uuid} on {AGENTS[0]}: "
            f"vm_state {spawned.vm_state}, power_state {spawned.power_state}"
        )
    with story.step("attach a volume") as result:
        volume = root / "volumes" / "demo-volume.img"
        await asyncio.to_thread(volume.write_bytes, b"\0" * 16 * MIB)
        connection = VolumeConnection(
            driver_volume_type="file",
            data=VolumeConnectionData(volume_id="demo-volume", device_path=str(volume)),
            serial="demo-volume",
        )
        try:
            attached = await client.attach_volume(AGENTS[0], guest, connection, "/dev/vdb")
        except NotSupported as exc:
            if real:
                raise
            # libvirt's test driver attaches no devices: the agent says so, typed.
            result.append(f"not on the test driver: the agent answered NotSupported ({exc})")
        else:
            devices = [str(m.device_name) for m in attached.block_device_mappings or []]
            result.append(f"attached {volume.name} (16 MiB file) as {', '.join(devices)}")
    with story.step("the hosts' resources again") as result:
        result.append(f"resources: {await show_resources(client, console, 'after')}")
    where = AGENTS[0]
    with story.step(f"live-migrate to {AGENTS[1]}") as result:
        if real:
            ended = await migrate(client, guest, console)
            if ended.status != "completed":
                raise MigrationFailed(f"migration {ended.uuid} ended {ended.status}")
            on = await where_is(guest.uuid, deployment.hosts)
            where = AGENTS[1]
            result.append(f"migrated to {AGENTS[1]}: its domain now runs on {', '.join(on)}")
        else:
            result.append("skipped: test driver, no live migration")
    with story.step("destroy the guest") as result:
        gone = await client.destroy(where, guest, destroy_disks=True)
        left = await where_is(guest.uuid, deployment.hosts)
        if not left:
            guest_entry.cleanup = "destroyed over the bus"
        shown = ", ".join(left) or "no host"
        result.append(f"destroyed {guest.name}: vm_state {gone.vm_state}, its domain on {shown}")
