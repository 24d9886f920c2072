"""What the instance system tests share: an agent's configuration for host1, the busybox
guest as an image with direct kernel boot, instances, an nbd export, event logs, and a view
of libvirt to compare before and after."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import libvirt

from agent.client import ComputeClient, EventStream
from agent.config import AgentConfig, AgentSection, AmqpSection, GuestSection, LibvirtSection
from agent.rpc.envelope import Event
from agent.service import Agent
from agent.virt import qemu_img
from schemas.objects import (
    Flavor,
    ImageMeta,
    ImageMetaProps,
    Instance,
    VolumeConnection,
    VolumeConnectionData,
)
from tests.agent import embedded
from tests.conftest import missing_component
from tests.system.conftest import DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage, GuestMarker

HOST = "sys-instances"
ROOT_IMAGE = "0c3e5a7b-9d1f-4a2b-8c4d-6e8f0a1b2c3d"
KERNEL = "busybox-kernel"
RAMDISK = "busybox-ramdisk"
MIB = 1024 * 1024
BOOT_TIMEOUT = 120.0
CALL_TIMEOUT = 180.0  # a soft reboot or a clean shutdown waits for the guest under TCG


@dataclass
class Deployment:
    agent: Agent
    client: ComputeClient
    host: LocalHost
    root: Path
    janitor: DomainJanitor
    guest_image: GuestImage


def make_guest_files(qemu_tmp_path: Path, guest_image: GuestImage) -> Path:
    """images/ (an 8 MiB root image, the guest's kernel and initramfs) and snapshots/ under
    `qemu_tmp_path`, where QEMU reads."""
    images = qemu_tmp_path / "images"
    images.mkdir()
    qemu_img.run(["create", "-q", "-f", "qcow2", str(images / ROOT_IMAGE), "8M"])
    shutil.copyfile(guest_image.kernel, images / KERNEL)
    shutil.copyfile(guest_image.initrd, images / RAMDISK)
    (qemu_tmp_path / "snapshots").mkdir()
    return qemu_tmp_path


def config_for(host: LocalHost, root: Path, amqp: AmqpSection | None = None) -> AgentConfig:
    """An agent serving `host` with its files under `root`; on the embedded bus unless
    `amqp` names a broker."""
    return AgentConfig(
        agent=AgentSection(host=HOST, host_ip="127.0.0.1", instances_path=str(root / "instances")),
        libvirt=LibvirtSection(uri=host.uri),
        guest=GuestSection(
            images_path=str(root / "images"),
            snapshots_path=str(root / "snapshots"),
            virt_type="qemu",
            cpu_mode="none",
        ),
        amqp=amqp or AmqpSection(),
    )


def kernel_image(guest_image: GuestImage) -> ImageMeta:
    return ImageMeta(
        id=ROOT_IMAGE,
        name="busybox",
        properties=ImageMetaProps(
            kernel_id=KERNEL, ramdisk_id=RAMDISK, os_command_line=guest_image.cmdline
        ),
    )


def tracked_instance(janitor: DomainJanitor, name: str | None = None) -> Instance:
    """A new instance whose domain `janitor` removes after the test."""
    return new_instance(janitor.track(str(uuidlib.uuid4())), name)


def new_instance(uuid: str, name: str | None = None) -> Instance:
    flavor = Flavor(flavorid="tiny", name="tiny", memory_mb=128, vcpus=1, root_gb=0)
    return Instance(
        uuid=uuid,
        name=name or f"instance-{uuid[:8]}",
        display_name="</title><evil/> & friends",
        project_id="project-1",
        vm_state="building",
        flavor=flavor,
        memory_mb=128,
        vcpus=1,
        root_gb=0,
        image_ref=ROOT_IMAGE,
    )


@dataclass
class EventLog:
    """The events of one instance, collected in the background in arrival order."""

    stream: EventStream
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        async def collect() -> None:
            async for event in self.stream:
                self.events.append(event)

        self.task = asyncio.create_task(collect())

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.stream.aclose()

    def states(self) -> list[tuple[str, str, str]]:
        """(vm_state, task_state, power_state) each state event set; '-' for unchanged."""
        rows = []
        for event in self.events:
            if not event.topic.endswith(".state"):
                continue
            changes = event.payload.obj_get_changes()
            rows.append(
                tuple(
                    str(changes[name]) if name in changes else "-"
                    for name in ("vm_state", "task_state", "power_state")
                )
            )
        return rows  # type: ignore[return-value]


# --- helpers -----------------------------------------------------------------------------


def domain_view(uri: str) -> dict[str, str]:
    """uuid -> persistent XML of every domain on the host (what 'no state changed' compares)."""
    conn = libvirt.open(uri)
    try:
        view = {}
        for dom in conn.listAllDomains(0):
            try:
                view[dom.UUIDString()] = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            except libvirt.libvirtError as exc:
                # Another test's domain went away between the listing and the read.
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        return view
    finally:
        conn.close()


@contextmanager
def serve_nbd(qemu_tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A 4 MiB raw file served by qemu-nbd on 127.0.0.1 as export `vol-nbd`: (name, port)."""
    if shutil.which("qemu-nbd") is None:
        missing_component("qemu-nbd", "apt-get install qemu-utils")
    disk = qemu_tmp_path / "nbd.img"
    disk.write_bytes(b"\x00" * 4 * MIB)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "qemu-nbd",
            "--persistent",
            "--bind=127.0.0.1",
            f"--port={port}",
            "--export-name=vol-nbd",
            "--format=raw",
            str(disk),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)
    try:
        yield "vol-nbd", port
    finally:
        server.terminate()
        server.wait(timeout=10)


def file_volume(path: Path, volume_id: str) -> VolumeConnection:
    path.write_bytes(b"\x00" * 4 * MIB)
    return VolumeConnection(
        driver_volume_type="file",
        data=VolumeConnectionData(volume_id=volume_id, device_path=str(path)),
        serial=volume_id,
    )


def embedded_agent(config: AgentConfig) -> AbstractAsyncContextManager[tuple[Agent, ComputeClient]]:
    """An agent on its own in-process bus, ready (guests adopted), and a client on that bus,
    waiting as long as a real guest under TCG needs."""
    return embedded.embedded_agent(config, ready_timeout=60, call_timeout=CALL_TIMEOUT)


@asynccontextmanager
async def embedded_client(
    host: LocalHost, files_dir: Path, guest_image: GuestImage
) -> AsyncIterator[ComputeClient]:
    """A client of an agent on the embedded bus serving `host`, the guest's files made under
    `files_dir` (where QEMU reads)."""
    root = await asyncio.to_thread(make_guest_files, files_dir, guest_image)
    async with embedded_agent(config_for(host, root)) as (_agent, client):
        yield client


async def console_shows(
    client: ComputeClient, me: Instance, line: str, timeout: float = 60.0
) -> None:
    """Until the guest printed `line` on its console (read over the bus)."""
    async with asyncio.timeout(timeout):
        while line not in (await client.get_console_output(HOST, me)).splitlines():  # noqa: ASYNC110
            await asyncio.sleep(0.5)


async def spawn_booted(client: ComputeClient, me: Instance, image: ImageMeta) -> None:
    """Spawn `me` and wait until its guest printed that it booted."""
    await client.spawn(HOST, me, image)
    await console_shows(client, me, GuestMarker.BOOTED.value, BOOT_TIMEOUT)
