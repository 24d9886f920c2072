"""The instance actor over the bus: typed calls, typed errors, events in order, and the
catalogue gating what is reachable. The hypervisor is the in-memory driver, and for what it
supports, libvirt's test driver under the whole agent; every verb runs on real QEMU in the
system tier (tests/system/test_instance_lifecycle.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from actors.instance import InstanceActor
from actors.instance.errors import (
    InstanceInvalidState,
    InstanceNotFound,
    InvalidConnectionInfo,
    InvalidInstanceArgument,
    NotSupported,
)
from agent.client import ComputeClient
from agent.errors import InvalidArguments, UnknownMethod
from agent.rpc.catalogue import CATALOGUE, Status
from agent.rpc.envelope import Event
from agent.transport import InProcessBus
from schemas.objects import (
    BlockDeviceMappingList,
    ImageMeta,
    Instance,
    NetworkInfo,
    VolumeConnection,
    VolumeConnectionData,
)
from tests.actors.instance.fakes import (
    UUID,
    FakeInstanceDriver,
    file_volume,
    flavor,
    image_meta,
    instance,
    nbd_volume,
    vif,
)
from tests.agent.embedded import embedded_guest
from tests.agent.serving import serving_instances
from tests.conftest import on_session_loop

HOST = "compute-1"
# Handlers that are the agent's own plumbing, never driver methods.
# The actor's own messages: events, resyncs, and its migration actor telling how it ended.
PLUMBING = {
    "sync_power_state",
    "confirm_power_state",
    "domain_event",
    "live_migration_ended",
    "current_record",
    # What the operation journal reads, besides the record, of an interrupted operation.
    "has_managed_save",
    "settle_interrupted_snapshot",
}


@dataclass
class EventLog:
    """Every event on the bus matching a pattern, in arrival order."""

    events: list[Event] = field(default_factory=list)

    def topics(self) -> list[str]:
        return [e.topic for e in self.events]

    def states(self) -> list[dict[str, object]]:
        return [
            {
                k: v
                for k, v in e.payload.obj_get_changes().items()
                if k not in ("uuid", "updated_at")
            }
            for e in self.events
            if e.topic.endswith(".state")
        ]


@dataclass
class Stack:
    client: ComputeClient
    driver: FakeInstanceDriver
    log: EventLog


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    bus = InProcessBus()
    await bus.start()
    driver = FakeInstanceDriver()
    async with serving_instances(bus, HOST, driver) as client:
        log = EventLog()
        stream = await client.subscribe("instance.#")

        async def collect() -> None:
            async for event in stream:
                log.events.append(event)

        collector = asyncio.create_task(collect())
        yield Stack(client, driver, log)
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
        await stream.aclose()
    await bus.aclose()


async def wait_for_state(log: EventLog, vm_state: str) -> None:
    async with asyncio.timeout(5):
        while not any(s.get("vm_state") == vm_state for s in log.states()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def test_every_implemented_instance_method_is_an_instance_actor_handler_and_back() -> None:
    implemented = {
        e.method for e in CATALOGUE if e.scope == "instance" and e.status is not Status.PLANNED
    }
    assert implemented == set(InstanceActor.handlers) - PLUMBING


async def test_plumbing_handlers_are_not_reachable_over_the_bus(stack: Stack) -> None:
    with pytest.raises(UnknownMethod):
        await stack.client.call(HOST, "domain_event", {"kind": "stopped"}, instance=UUID)
    with pytest.raises(UnknownMethod):
        await stack.client.call(HOST, "live_migration_ended", {"completed": False}, instance=UUID)


async def test_a_guest_through_its_lifecycle_over_the_bus_with_events_in_order(
    stack: Stack,
) -> None:
    client, me = stack.client, instance()
    spawned = await client.spawn(HOST, me, image_meta())
    assert isinstance(spawned, Instance) and spawned.vm_state == "active"
    await client.pause(HOST, me)
    await client.unpause(HOST, me)
    info = await client.get_info(HOST, me)
    assert info.state == "running"
    attached = await client.attach_volume(HOST, me, file_volume(), "/dev/vdb")
    assert [m.device_name for m in attached.block_device_mappings] == ["/dev/vdb"]
    path = await client.snapshot(HOST, me, str(uuid.uuid4()))
    assert path.endswith(".qcow2")
    gone = await client.destroy(HOST, me)
    assert gone.vm_state == "deleted"

    await wait_for_state(stack.log, "deleted")
    vm_and_task = [(s.get("vm_state"), s.get("task_state")) for s in stack.log.states() if s != {}]
    assert vm_and_task == [
        ("building", "spawning"),
        ("active", None),
        (None, "pausing"),
        ("paused", None),
        (None, "unpausing"),
        ("active", None),
        (None, None),  # the volume's block device mapping
        (None, "image_snapshot"),
        (None, "image_uploading"),
        (None, None),
        (None, "deleting"),
        ("deleted", None),
    ]
    snapshots = [e.payload.status for e in stack.log.events if e.topic.endswith(".snapshot")]
    assert snapshots == ["queued", "saving", "active"]


async def test_typed_errors_cross_the_bus_with_their_fields(stack: Stack) -> None:
    client, me = stack.client, instance()
    with pytest.raises(InstanceNotFound) as missing:
        await client.pause(HOST, me)
    assert missing.value.uuid == UUID
    await client.spawn(HOST, me, image_meta())
    with pytest.raises(InstanceInvalidState) as invalid:
        await client.unpause(HOST, me)
    assert invalid.value.fields == {
        "action": "unpause",
        "uuid": UUID,
        "attr": "vm_state",
        "state": "active",
    }
    malformed = VolumeConnection(driver_volume_type="nbd", data=VolumeConnectionData(name="v"))
    with pytest.raises(InvalidConnectionInfo) as bad:
        await client.attach_volume(HOST, me, malformed, "/dev/vdb")
    assert bad.value.reason == "missing hosts, ports"
    assert "attach_volume" not in stack.driver.calls()


async def test_a_wrong_object_type_is_refused_before_the_actor_sees_it(stack: Stack) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await stack.client.call(
            HOST, "spawn", {"instance": flavor(), "image_meta": image_meta()}, instance=UUID
        )
    assert caught.value.reason == "argument 'instance' must be Instance, not Flavor"
    assert stack.driver.journal == []


async def test_a_request_whose_instance_argument_names_another_instance_is_refused(
    stack: Stack,
) -> None:
    other = instance("11111111-2222-4333-8444-555555555555")
    with pytest.raises(InvalidInstanceArgument) as caught:
        await stack.client.call(
            HOST, "spawn", {"instance": other, "image_meta": ImageMeta()}, instance=UUID
        )
    assert caught.value.argument == "instance"
    assert stack.driver.domains == {}


async def test_a_hostile_name_is_refused_over_the_bus_with_nothing_created(stack: Stack) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await stack.client.spawn(HOST, instance(name="x'/><devices/>"), image_meta())
    assert caught.value.argument == "instance.name"
    assert stack.driver.domains == {}


async def test_every_typed_instance_call_reaches_its_handler(stack: Stack) -> None:
    client, me, image = stack.client, instance(), image_meta(guest_agent=True)
    ports, disks = NetworkInfo(objects=[vif()]), BlockDeviceMappingList()
    await client.spawn(HOST, me, image, ports, None)
    await client.reboot(HOST, me, "HARD", ports, disks)
    await client.power_off(HOST, me, 5, 1)
    await client.power_on(HOST, me, ports, disks)
    await client.suspend(HOST, me)
    await client.resume(HOST, me, ports, disks)
    await client.soft_delete(HOST, me)
    await client.restore(HOST, me)
    await client.rescue(HOST, me, image)
    await client.unrescue(HOST, me)
    await client.resume_state_on_host_boot(HOST, me, ports, disks)
    assert await client.poll_rebooting_instances(HOST, UUID, 60) is False
    old, new = file_volume(), nbd_volume()
    await client.attach_volume(HOST, me, old, "/dev/vdb")
    swapped = await client.swap_volume(HOST, me, old, new, "/dev/vdb", 0)
    assert [m.volume_id for m in swapped.block_device_mappings] == ["vol-2"]
    port = vif(port_id=str(uuid.uuid4()), mac="fa:16:3e:00:00:09", devname="tap9")
    await client.attach_interface(HOST, me, port, image)
    assert await client.macs_for_instance(HOST, me) == ["fa:16:3e:00:00:01", "fa:16:3e:00:00:09"]
    await client.detach_interface(HOST, me, port)
    assert (await client.get_volume_connector(HOST, me)).host == "compute-1"
    assert await client.default_root_device_name(HOST, me, image) == "/dev/vda"
    names = await client.default_device_names_for_instance(
        HOST, me, "/dev/vda", BlockDeviceMappingList()
    )
    assert names.objects == []
    assert (await client.get_diagnostics(HOST, me)).driver == "fake"
    assert len(await client.block_stats(HOST, me, "vda")) == 5
    assert len(await client.interface_stats(HOST, me, "tap0")) == 8
    assert "booted" in await client.get_console_output(HOST, me)
    assert (await client.get_vnc_console(HOST, me)).port == 5900
    assert (await client.get_serial_console(HOST, me)).console_type == "serial"
    changed = await client.change_instance_metadata(HOST, me, {"k": ["+", "v"]})
    assert changed.metadata == {"k": "v"}
    await client.set_admin_password(HOST, me, "s3cret")
    await client.inject_file(HOST, me, "/etc/motd", b"hello")
    assert stack.driver.domains[UUID].guest_files == {"/etc/motd": b"hello"}
    await client.inject_network_info(HOST, me, NetworkInfo(objects=[vif()]))
    with pytest.raises(NotSupported):
        await client.reset_network(HOST, me)
    await client.power_off(HOST, me, 0)
    await client.cleanup(HOST, me, ports, disks, destroy_disks=True)
    assert stack.driver.domains == {}


# --- over libvirt's test driver --------------------------------------------------------------


@on_session_loop
async def test_the_libvirt_driver_serves_the_instance_over_the_bus_on_the_test_driver(
    tmp_path: Path,
) -> None:
    async with embedded_guest(tmp_path, HOST, image_meta()) as running:
        client, me, spawned = running.client, running.guest, running.spawned
        assert (spawned.vm_state, spawned.power_state) == ("active", "running")
        assert (await client.pause(HOST, me)).power_state == "paused"
        assert (await client.unpause(HOST, me)).power_state == "running"
        suspended = await client.suspend(HOST, me)
        assert (suspended.vm_state, suspended.power_state) == ("suspended", "shutdown")
        assert (await client.resume(HOST, me)).vm_state == "active"
        assert (await client.get_info(HOST, me)).state == "running"
        assert (await client.get_diagnostics(HOST, me)).driver == "libvirt"
        with pytest.raises(InstanceInvalidState):
            await client.unpause(HOST, me)
