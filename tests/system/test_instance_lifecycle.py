"""A real guest driven through its life over the bus, on a real QEMU host (host1).

A whole agent (`Agent`: transport, host runtime with the LibvirtInstanceDriver, dispatcher)
serves host1, once on the embedded bus and once on RabbitMQ; a `ComputeClient` drives the
busybox guest through spawn -> attach_volume (file, then nbd) -> the guest sees the disks ->
detach_volume -> soft reboot -> pause/unpause -> suspend/resume -> snapshot -> power_off
(clean: the guest logs the request) -> destroy, and every step's `instance.<uuid>.state`
event arrives, in order. Bad input (unknown instance, wrong object type, malformed
connection info, hostile names) is refused with typed errors and libvirt is left as it was.

Each boot costs ~10 s under TCG; the walk boots three times per transport.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid as uuidlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest
import pytest_asyncio

from actors.instance_errors import (
    InstanceNotFound,
    InvalidConnectionInfo,
    InvalidInstanceArgument,
)
from agent.client import ComputeClient, EventStream
from agent.config import AgentConfig, AgentSection, AmqpSection, GuestSection, LibvirtSection
from agent.errors import InvalidArguments
from agent.rpc.envelope import Event
from agent.service import Agent
from agent.transport import InProcessBus
from agent.virt import qemu_img
from schemas.objects import (
    Flavor,
    ImageMeta,
    ImageMetaProps,
    Instance,
    VolumeConnection,
    VolumeConnectionData,
)
from tests.agent.conftest import delete_amqp_topology
from tests.conftest import missing_component
from tests.system.conftest import DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage, GuestMarker, disks_line

pytestmark = [
    pytest.mark.libvirt_qemu,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.usefixtures("session_loop_not_blocked"),
]

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


@pytest.fixture
def guest_files(qemu_tmp_path: Path, guest_image: GuestImage) -> Path:
    """images/ (an 8 MiB root image, the guest's kernel and initramfs) where QEMU reads."""
    images = qemu_tmp_path / "images"
    images.mkdir()
    qemu_img.run(["create", "-q", "-f", "qcow2", str(images / ROOT_IMAGE), "8M"])
    shutil.copyfile(guest_image.kernel, images / KERNEL)
    shutil.copyfile(guest_image.initrd, images / RAMDISK)
    (qemu_tmp_path / "snapshots").mkdir()
    return qemu_tmp_path


def config_for(host: LocalHost, root: Path, amqp: AmqpSection) -> AgentConfig:
    return AgentConfig(
        agent=AgentSection(host=HOST, host_ip="127.0.0.1", instances_path=str(root / "instances")),
        libvirt=LibvirtSection(uri=host.uri),
        guest=GuestSection(
            images_path=str(root / "images"),
            snapshots_path=str(root / "snapshots"),
            virt_type="qemu",
            cpu_mode="none",
        ),
        amqp=amqp,
    )


@pytest_asyncio.fixture(loop_scope="session", params=["embedded", "rabbitmq"])
async def deployment(
    request: pytest.FixtureRequest,
    test_hosts: tuple[LocalHost, ...],
    guest_files: Path,
    guest_image: GuestImage,
    domain_janitor: DomainJanitor,
) -> AsyncIterator[Deployment]:
    host = test_hosts[0]
    if request.param == "embedded":
        bus = InProcessBus()
        await bus.start()
        agent = Agent(config_for(host, guest_files, AmqpSection()), transport=bus)
        client = ComputeClient(bus, default_timeout=CALL_TIMEOUT)
    else:
        url = request.getfixturevalue("rabbitmq_url")
        prefix = f"vt-inst-{uuidlib.uuid4().hex[:8]}"
        agent = Agent(config_for(host, guest_files, AmqpSection(url=url, prefix=prefix)))
        client = await ComputeClient.connect(url, prefix=prefix, default_timeout=CALL_TIMEOUT)
    await agent.start()
    try:
        await agent.wait_ready(timeout=60)
        yield Deployment(agent, client, host, guest_files, domain_janitor, guest_image)
    finally:
        await client.aclose()
        await agent.aclose()
        if request.param == "embedded":
            await bus.aclose()
        else:
            await delete_amqp_topology(url, prefix, [HOST])


def kernel_image(guest_image: GuestImage) -> ImageMeta:
    return ImageMeta(
        id=ROOT_IMAGE,
        name="busybox",
        properties=ImageMetaProps(
            kernel_id=KERNEL, ramdisk_id=RAMDISK, os_command_line=guest_image.cmdline
        ),
    )


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


async def console_until(
    client: ComputeClient, instance: Instance, check: Callable[[str], bool], timeout: float
) -> str:
    """Poll the guest's console over the bus until `check` holds for its text."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = await client.get_console_output(HOST, instance)
        if check(text):
            return text
        if loop.time() > deadline:
            raise AssertionError(f"console never matched; last lines: {text.splitlines()[-5:]}")
        await asyncio.sleep(0.5)


def has_line(line: str, times: int = 1) -> Callable[[str], bool]:
    return lambda text: text.splitlines().count(line) >= times


def domain_view(uri: str) -> dict[str, str]:
    """uuid -> persistent XML of every domain on the host (what 'no state changed' compares)."""
    conn = libvirt.open(uri)
    try:
        return {
            dom.UUIDString(): dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            for dom in conn.listAllDomains(0)
        }
    finally:
        conn.close()


@pytest.fixture
def nbd_export(qemu_tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A 4 MiB raw file served by qemu-nbd on 127.0.0.1 as export `vol-nbd`."""
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


# --- the walk ----------------------------------------------------------------------------


async def test_a_real_guest_through_its_life_over_the_bus_with_its_events_in_order(
    deployment: Deployment, nbd_export: tuple[str, int]
) -> None:
    client, root = deployment.client, deployment.root
    uuid = deployment.janitor.track(str(uuidlib.uuid4()))
    me = new_instance(uuid)
    log = EventLog(await client.subscribe(f"instance.{uuid}.*"))
    log.start()
    try:
        await walk(deployment, me, nbd_export, root)
        await asyncio.sleep(1.0)  # the last events are on their way
    finally:
        await log.aclose()

    assert log.states() == [
        ("building", "spawning", "pending"),
        ("active", "None", "running"),
        ("-", "-", "-"),  # attach file volume: block_device_mappings
        ("-", "-", "-"),  # attach nbd volume
        ("-", "-", "-"),  # detach nbd volume
        ("-", "-", "-"),  # detach file volume
        ("-", "rebooting", "-"),
        ("-", "None", "-"),
        ("-", "pausing", "-"),
        ("paused", "None", "paused"),
        ("-", "unpausing", "-"),
        ("active", "None", "running"),
        ("-", "suspending", "-"),
        ("suspended", "None", "shutdown"),
        ("-", "resuming", "-"),
        ("active", "None", "running"),
        ("-", "image_snapshot", "-"),
        ("-", "image_uploading", "-"),
        ("-", "None", "-"),
        ("-", "powering-off", "-"),
        ("stopped", "None", "shutdown"),
        ("-", "deleting", "-"),
        ("deleted", "None", "pending"),
    ]
    power = [e.payload.state for e in log.events if e.topic.endswith(".power_state")]
    assert power == ["running", "paused", "running", "shutdown", "running", "shutdown", "pending"]
    snapshots = [e.payload.status for e in log.events if e.topic.endswith(".snapshot")]
    assert snapshots[0] == "queued" and snapshots[-1] == "active"
    assert set(snapshots[1:-1]) == {"saving"}


async def walk(
    deployment: Deployment, me: Instance, nbd_export: tuple[str, int], root: Path
) -> None:
    client, uri = deployment.client, deployment.host.uri
    spawned = await client.spawn(HOST, me, kernel_image(deployment.guest_image))
    assert (spawned.vm_state, spawned.power_state) == ("active", "running")
    await console_until(client, me, has_line(GuestMarker.BOOTED.value), BOOT_TIMEOUT)
    info = await client.get_info(HOST, instance=me)
    assert (info.state, info.num_cpu) == ("running", 1)

    # Volumes: a file, then an nbd export through QEMU's own client; bad input changes nothing.
    volume = root / "vol-file.img"
    volume.write_bytes(b"\x00" * 4 * MIB)
    volume.chmod(0o666)
    file_conn = VolumeConnection(
        driver_volume_type="file",
        data=VolumeConnectionData(volume_id="vol-file", device_path=str(volume)),
        serial="vol-file",
    )
    export, port = nbd_export
    nbd_conn = VolumeConnection(
        driver_volume_type="nbd",
        data=VolumeConnectionData(
            volume_id="vol-nbd", name=export, hosts=["127.0.0.1"], ports=[str(port)]
        ),
    )
    before = await asyncio.to_thread(domain_view, uri)
    await refused_without_effect(client, me, file_conn)
    assert await asyncio.to_thread(domain_view, uri) == before
    await client.attach_volume(HOST, me, file_conn, "/dev/vdb")
    attached = await client.attach_volume(HOST, me, nbd_conn, "/dev/vdc")
    assert [m.device_name for m in attached.block_device_mappings] == ["/dev/vdb", "/dev/vdc"]
    await console_until(client, me, has_line(disks_line(["vda", "vdb", "vdc"])), 60)
    await client.detach_volume(HOST, me, nbd_conn, "/dev/vdc")
    detached = await client.detach_volume(HOST, me, file_conn, "/dev/vdb")
    assert detached.block_device_mappings.objects == []
    await console_until(client, me, has_line(disks_line(["vda"]), times=2), 60)

    # Soft reboot: the guest hears the power button and boots again.
    rebooted = await client.reboot(HOST, me, "SOFT")
    assert rebooted.vm_state == "active"
    await console_until(client, me, has_line(GuestMarker.BOOTED.value, 2), BOOT_TIMEOUT)
    assert has_line(GuestMarker.SHUTDOWN_REQUESTED.value)(await client.get_console_output(HOST, me))

    assert (await client.pause(HOST, me)).vm_state == "paused"
    assert (await client.unpause(HOST, me)).vm_state == "active"
    assert (await client.suspend(HOST, me)).vm_state == "suspended"
    assert (await client.resume(HOST, me)).vm_state == "active"

    image_id = str(uuidlib.uuid4())
    path = Path(await client.snapshot(HOST, me, image_id))
    assert path == root / "snapshots" / f"{image_id}.qcow2"
    assert (await asyncio.to_thread(qemu_img.info, path)).format == "qcow2"

    # A clean power off: the guest logged the request (a second time: the reboot was first).
    stopped = await client.power_off(HOST, me, shutdown_timeout=90, retry_interval=10)
    assert (stopped.vm_state, stopped.power_state) == ("stopped", "shutdown")
    shutdowns = has_line(GuestMarker.SHUTDOWN_REQUESTED.value, 2)
    assert shutdowns(await client.get_console_output(HOST, me))

    gone = await client.destroy(HOST, me)
    assert gone.vm_state == "deleted"
    assert me.uuid not in await asyncio.to_thread(domain_view, uri)
    assert not (root / "instances" / me.uuid).exists()


async def refused_without_effect(
    client: ComputeClient, me: Instance, good: VolumeConnection
) -> None:
    missing_ports = VolumeConnection(
        driver_volume_type="nbd", data=VolumeConnectionData(name="v", hosts=["127.0.0.1"])
    )
    with pytest.raises(InvalidConnectionInfo) as caught:
        await client.attach_volume(HOST, me, missing_ports, "/dev/vdb")
    assert caught.value.reason == "missing ports"
    with pytest.raises(InvalidInstanceArgument) as hostile:
        await client.attach_volume(HOST, me, good, "/dev/vdb'/><disk type='block")
    assert hostile.value.argument == "mountpoint"


async def test_bad_input_is_refused_with_typed_errors_and_libvirt_unchanged(
    deployment: Deployment,
) -> None:
    client, uri = deployment.client, deployment.host.uri
    before = await asyncio.to_thread(domain_view, uri)
    unknown = new_instance(str(uuidlib.uuid4()))
    image = kernel_image(deployment.guest_image)

    with pytest.raises(InstanceNotFound) as not_found:
        await client.pause(HOST, unknown)
    assert not_found.value.uuid == unknown.uuid
    with pytest.raises(InstanceNotFound):
        await client.get_info(HOST, instance=unknown)

    flavor = Flavor(flavorid="tiny", name="tiny", memory_mb=128, vcpus=1, root_gb=0)
    with pytest.raises(InvalidArguments) as wrong_type:
        await client.call(
            HOST, "spawn", {"instance": flavor, "image_meta": image}, instance=unknown.uuid
        )
    assert wrong_type.value.reason == "argument 'instance' must be Instance, not Flavor"

    tried = []
    for name in ("</name><devices><disk/></devices><name>", "../../../etc/passwd", "a b"):
        hostile = new_instance(deployment.janitor.track(str(uuidlib.uuid4())), name=name)
        tried.append(hostile.uuid)
        with pytest.raises(InvalidInstanceArgument) as refused:
            await client.spawn(HOST, hostile, image)
        assert refused.value.argument == "instance.name"

    with pytest.raises(InvalidInstanceArgument) as bad_image:
        await client.snapshot(HOST, unknown, "../../../etc/shadow")
    assert bad_image.value.argument == "image_id"

    assert await asyncio.to_thread(domain_view, uri) == before
    for uuid in tried:
        assert not (deployment.root / "instances" / uuid).exists()
