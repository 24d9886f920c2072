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
import contextlib
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from actors.instance.errors import (
    InstanceNotFound,
    InvalidConnectionInfo,
    InvalidInstanceArgument,
    NotSupported,
)
from agent.client import ComputeClient
from agent.conductor.service import running_conductor
from agent.config import AmqpSection
from agent.errors import InvalidArguments
from agent.service import Agent, build_transport
from agent.transport import InProcessBus
from agent.transport.topics import CONDUCTOR_QUEUE
from agent.virt import qemu_img
from schemas.objects import (
    VIF,
    BlockDeviceMapping,
    BlockDeviceMappingList,
    Flavor,
    Instance,
    NetworkInfo,
    VolumeConnection,
    VolumeConnectionData,
)
from tests.agent.conductor.test_service_embedded import states_in_sql
from tests.agent.conftest import delete_amqp_topology
from tests.system.conftest import ON_REAL_QEMU, DomainJanitor, LocalHost
from tests.system.guest_image import GuestImage, GuestMarker, disks_line, nics_line
from tests.system.instance_helpers import (
    BOOT_TIMEOUT,
    CALL_TIMEOUT,
    HOST,
    Deployment,
    EventLog,
    config_for,
    domain_view,
    file_volume,
    kernel_image,
    make_guest_files,
    new_instance,
    serve_nbd,
    tracked_instance,
)

pytestmark = ON_REAL_QEMU


@pytest.fixture
def guest_files(qemu_tmp_path: Path, guest_image: GuestImage) -> Path:
    return make_guest_files(qemu_tmp_path, guest_image)


@pytest.fixture
def nbd_export(qemu_tmp_path: Path) -> Iterator[tuple[str, int]]:
    with serve_nbd(qemu_tmp_path) as export:
        yield export


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
        agent = Agent(config_for(host, guest_files), transport=bus)
        client = ComputeClient(bus, default_timeout=CALL_TIMEOUT)
    else:
        url = request.getfixturevalue("rabbitmq_url")
        prefix = f"vt-inst-{uuidlib.uuid4().hex[:8]}"
        config = config_for(host, guest_files, AmqpSection(url=url, prefix=prefix))
        agent = Agent(config)
        client = await ComputeClient.connect(url, prefix=prefix, default_timeout=CALL_TIMEOUT)
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "rabbitmq":
            # A conductor on the same bus, as a deployment runs one: the agent keeps its
            # records there (on the embedded bus it runs its own).
            conductor_bus = build_transport(config)
            await conductor_bus.start()
            stack.push_async_callback(conductor_bus.aclose)
            await stack.enter_async_context(running_conductor(conductor_bus, config, upgrade=True))
        await agent.start()
        try:
            await agent.wait_ready(timeout=60)
            yield Deployment(agent, client, host, guest_files, domain_janitor, guest_image)
        finally:
            await client.aclose()
            await agent.aclose()
            if request.param == "embedded":
                await bus.aclose()
    if request.param == "rabbitmq":  # once the conductor stopped consuming
        await delete_amqp_topology(url, prefix, [HOST, CONDUCTOR_QUEUE])


# --- the walk ----------------------------------------------------------------------------

UNCHANGED = ("-", "-", "-")  # a state event that changed none of the three (devices, metadata)


@dataclass
class Walk:
    """One guest walked over the bus, the events it should produce, and how far its console
    was read (`offset`: each wait looks only at what the guest printed after the last one)."""

    deployment: Deployment
    me: Instance
    states: list[tuple[str, str, str]] = field(default_factory=list)
    powers: list[str] = field(default_factory=list)
    offset: int = 0

    @property
    def client(self) -> ComputeClient:
        return self.deployment.client

    def expect(self, *rows: tuple[str, str, str]) -> None:
        self.states.extend(rows)
        self.powers.extend(row[2] for row in rows if row[2] != "-")

    def operation(self, task: str, vm_state: str, power: str = "-") -> None:
        """An operation's two events: its task_state, then where it ended."""
        self.expect(("-", task, "-"), (vm_state, "None", power))

    async def sees(self, line: str, timeout: float = 60.0) -> None:
        """Wait until the guest printed `line` (read over the bus: get_console_output)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            text = await self.client.get_console_output(HOST, self.me)
            end = find_line(text, line, self.offset)
            if end is not None:
                self.offset = end
                return
            if loop.time() > deadline:
                tail = text.splitlines()[-5:]
                raise AssertionError(f"the guest never printed {line!r}; last lines: {tail}")
            await asyncio.sleep(0.5)

    async def booted(self) -> None:
        await self.sees(GuestMarker.BOOTED.value, BOOT_TIMEOUT)

    async def shut_down(self) -> None:
        await self.sees(GuestMarker.SHUTDOWN_REQUESTED.value)


def find_line(text: str, line: str, start: int) -> int | None:
    """The offset just past the first complete line equal to `line` after `start`."""
    position = start
    for raw in text[start:].split("\n")[:-1]:  # the last piece is still being printed
        position += len(raw) + 1
        if raw.rstrip("\r") == line:
            return position
    return None


async def test_a_real_guest_through_its_life_over_the_bus_with_its_events_in_order(
    deployment: Deployment, nbd_export: tuple[str, int], request: pytest.FixtureRequest
) -> None:
    client = deployment.client
    me = tracked_instance(deployment.janitor)
    log = EventLog(await client.subscribe(f"instance.{me.uuid}.*"))
    log.start()
    walk = Walk(deployment, me)
    # The transport changes nothing for the verbs below: they walk on the embedded bus only.
    extended = "embedded" in request.node.name
    try:
        await spawn_and_look(walk)
        await volumes(walk, nbd_export, swap=extended)
        if extended:
            await an_interface(walk)
        await power_verbs(walk)
        if extended:
            await rescue_and_soft_delete(walk)
        await snapshot_power_off_and_destroy(walk)
        await asyncio.sleep(1.0)  # the last events are on their way
    finally:
        await log.aclose()

    assert log.states() == walk.states
    power = [e.payload.state for e in log.events if e.topic.endswith(".power_state")]
    assert power == walk.powers
    snapshots = [e.payload.status for e in log.events if e.topic.endswith(".snapshot")]
    assert snapshots[0] == "queued" and snapshots[-1] == "active"
    assert set(snapshots[1:-1]) == {"saving"}
    # The conductor's database holds the record as the walk left it (read in SQL, not
    # through the code that wrote it): the embedded agent's own conductor, or the one the
    # RabbitMQ deployment runs beside the agent; both on the default SQLite file.
    database = Path(deployment.agent.config.agent.instances_path) / "_conductor.sqlite"
    assert await asyncio.to_thread(states_in_sql, database, me.uuid) == (
        "deleted",
        None,
        "pending",
    )


async def spawn_and_look(walk: Walk) -> None:
    client, me = walk.client, walk.me
    spawned = await client.spawn(HOST, me, kernel_image(walk.deployment.guest_image))
    assert (spawned.vm_state, spawned.power_state) == ("active", "running")
    # The first event is the whole new record; its "pending" is no power-state change.
    walk.states.append(("building", "spawning", "pending"))
    walk.expect(("active", "None", "running"))
    await walk.booted()
    info = await client.get_info(HOST, me)
    assert (info.state, info.num_cpu) == ("running", 1)
    diagnostics = await client.get_diagnostics(HOST, me)
    assert (diagnostics.state, diagnostics.driver, diagnostics.num_disks) == (
        "running",
        "libvirt",
        1,
    )
    assert (await client.block_stats(HOST, me, "vda"))[0] > 0  # the guest read its disk
    assert (await client.get_vnc_console(HOST, me)).console_type == "vnc"
    serial = await client.get_serial_console(HOST, me)
    assert (serial.internal_access_path or "").startswith("/dev/pts/")
    assert (await client.get_volume_connector(HOST, me)).host == HOST
    assert (
        await client.default_root_device_name(HOST, me, kernel_image(walk.deployment.guest_image))
        == "/dev/vda"
    )
    unnamed = BlockDeviceMappingList(
        objects=[
            BlockDeviceMapping(
                uuid=str(uuidlib.uuid4()),
                instance_uuid=me.uuid,
                source_type="blank",
                destination_type="local",
            )
        ]
    )
    named = await client.default_device_names_for_instance(HOST, me, "/dev/vda", unnamed)
    assert [m.device_name for m in named] == ["/dev/vdb"]
    changed = await client.change_instance_metadata(HOST, me, {"role": ["+", "</x> & 'web'"]})
    assert changed.metadata == {"role": "</x> & 'web'"}
    walk.expect(UNCHANGED)
    with pytest.raises(NotSupported):  # the busybox image declares no QEMU guest agent
        await client.set_admin_password(HOST, me, "s3cret")
    with pytest.raises(NotSupported):
        await client.reset_network(HOST, me)


async def volumes(walk: Walk, nbd_export: tuple[str, int], *, swap: bool) -> None:
    """A file volume, then an nbd export through QEMU's own client; bad input changes
    nothing; with `swap`, the file volume is copied to another one under the running guest."""
    client, me, root = walk.client, walk.me, walk.deployment.root
    uri = walk.deployment.host.uri
    file_conn = file_volume(root / "vol-file.img", "vol-file")
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
    await walk.sees(disks_line(["vda", "vdb", "vdc"]))
    await client.detach_volume(HOST, me, nbd_conn, "/dev/vdc")
    walk.expect(UNCHANGED, UNCHANGED, UNCHANGED)
    if swap:
        copy = file_volume(root / "vol-copy.img", "vol-copy")
        swapped = await client.swap_volume(HOST, me, file_conn, copy, "/dev/vdb")
        assert [m.volume_id for m in swapped.block_device_mappings] == ["vol-copy"]
        assert "vol-copy.img" in (await asyncio.to_thread(domain_view, uri))[me.uuid]
        file_conn = copy
        walk.expect(UNCHANGED)
    detached = await client.detach_volume(HOST, me, file_conn, "/dev/vdb")
    assert detached.block_device_mappings.objects == []
    walk.expect(UNCHANGED)
    await walk.sees(disks_line(["vda"]))


async def an_interface(walk: Walk) -> None:
    client, me = walk.client, walk.me
    devname = f"tapvi{me.uuid[:8]}"
    port = VIF(id=str(uuidlib.uuid4()), address="fa:16:3e:5a:00:01", type="tap", devname=devname)
    await client.attach_interface(HOST, me, port)
    await walk.sees(nics_line(["eth0"]))
    assert await client.macs_for_instance(HOST, me) == ["fa:16:3e:5a:00:01"]
    assert len(await client.interface_stats(HOST, me, devname)) == 8
    active = port.obj_clone()
    active.active = True
    updated = await client.inject_network_info(HOST, me, NetworkInfo(objects=[active]))
    assert [v.active for v in updated.network_info] == [True]
    await client.detach_interface(HOST, me, port)
    await walk.sees(nics_line([]))
    walk.expect(UNCHANGED, UNCHANGED, UNCHANGED)


async def power_verbs(walk: Walk) -> None:
    client, me = walk.client, walk.me
    rebooted = await client.reboot(HOST, me, "SOFT")  # the guest hears the power button
    assert rebooted.vm_state == "active"
    walk.expect(("-", "rebooting", "-"), ("-", "None", "-"))
    await walk.shut_down()
    await walk.booted()
    assert (await client.pause(HOST, me)).vm_state == "paused"
    walk.operation("pausing", "paused", "paused")
    assert (await client.unpause(HOST, me)).vm_state == "active"
    walk.operation("unpausing", "active", "running")
    assert (await client.suspend(HOST, me)).vm_state == "suspended"
    walk.operation("suspending", "suspended", "shutdown")
    assert (await client.resume(HOST, me)).vm_state == "active"
    walk.operation("resuming", "active", "running")


async def rescue_and_soft_delete(walk: Walk) -> None:
    client, me = walk.client, walk.me
    rescued = await client.rescue(HOST, me, kernel_image(walk.deployment.guest_image))
    assert rescued.vm_state == "rescued"
    walk.operation("rescuing", "rescued")
    await walk.booted()
    await walk.sees(disks_line(["vda", "vdb"]))  # the rescue disk, then the guest's own
    assert (await client.unrescue(HOST, me)).vm_state == "active"
    walk.operation("unrescuing", "active")
    await walk.booted()
    deleted = await client.soft_delete(HOST, me)
    assert (deleted.vm_state, deleted.power_state) == ("soft-delete", "shutdown")
    walk.operation("soft-deleting", "soft-delete", "shutdown")
    await walk.shut_down()
    assert (await client.restore(HOST, me)).vm_state == "active"
    walk.operation("restoring", "active", "running")
    await walk.booted()


async def snapshot_power_off_and_destroy(walk: Walk) -> None:
    client, me, root = walk.client, walk.me, walk.deployment.root
    image_id = str(uuidlib.uuid4())
    path = Path(await client.snapshot(HOST, me, image_id))
    assert path == root / "snapshots" / f"{image_id}.qcow2"
    assert (await asyncio.to_thread(qemu_img.info, path)).format == "qcow2"
    walk.expect(("-", "image_snapshot", "-"), ("-", "image_uploading", "-"), ("-", "None", "-"))

    stopped = await client.power_off(HOST, me, timeout=90, retry_interval=10)
    assert (stopped.vm_state, stopped.power_state) == ("stopped", "shutdown")
    walk.operation("powering-off", "stopped", "shutdown")
    await walk.shut_down()  # clean: the guest logged the power button

    gone = await client.destroy(HOST, me)
    assert gone.vm_state == "deleted"
    walk.operation("deleting", "deleted", "pending")
    assert me.uuid not in await asyncio.to_thread(domain_view, walk.deployment.host.uri)
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
        await client.get_info(HOST, unknown)

    flavor = Flavor(flavorid="tiny", name="tiny", memory_mb=128, vcpus=1, root_gb=0)
    with pytest.raises(InvalidArguments) as wrong_type:
        await client.call(
            HOST, "spawn", {"instance": flavor, "image_meta": image}, instance=unknown.uuid
        )
    assert wrong_type.value.reason == "argument 'instance' must be Instance, not Flavor"

    tried = []
    for name in ("</name><devices><disk/></devices><name>", "../../../etc/passwd", "a b"):
        hostile = tracked_instance(deployment.janitor, name=name)
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
