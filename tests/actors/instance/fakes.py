"""An in-memory `InstanceDriver` for the instance actor's tests, and samples to feed it.

`FakeInstanceDriver` keeps domains as records (power state, recovery data, volumes, ports,
files written by the guest agent) and enforces what libvirt would: a domain spawned twice,
an operation on a missing domain (`InstanceNotFound`), a pause of a stopped domain, ... are
errors here too, so the actor's checks are tested against something that pushes back. It is
also the actor's `InstanceHypervisor` (power states). `fail_next(method, error)` makes the
next call of a method fail; `journal` lists every call as (method, uuid).

The real driver (`agent.virt.instance_driver`) runs the same actor in tests/agent and the
system tier.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from actors import ActorRef, ActorSystem, instance_address
from actors.instance import InstanceActor, state_topic
from actors.instance.driver import InstanceDriver
from actors.instance.errors import InstanceNotFound, NotSupported
from schemas.base import VersionedObject
from schemas.errors import VirtactorError
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.enums import PowerState
from schemas.objects.flavor import Flavor
from schemas.objects.image import ImageMeta, ImageMetaProps
from schemas.objects.instance import Instance
from schemas.objects.network import VIF, NetworkInfo
from schemas.objects.virt import ConsoleInfo, Diagnostics, InstanceInfo
from schemas.objects.volume import VolumeConnection, VolumeConnectionData, VolumeConnector

UUID = "6f2b0c52-5c1e-4c55-9a40-2d7c1f0e0a01"
IMAGE_ID = "0c9e7a4e-2b7d-4f0e-8e55-3a1b2c3d4e5f"
PORT_ID = "7a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


class FakeDriverError(VirtactorError):
    msg_fmt = "fake driver: {method} failed: {reason}"


@dataclass
class FakeDomain:
    name: str
    state: PowerState
    recovery: bytes | None
    volumes: dict[str, VolumeConnection] = field(default_factory=dict)
    vifs: dict[str, VIF] = field(default_factory=dict)
    managed_save: bool = False
    rescued: bool = False
    has_agent: bool = False
    console: str = ""
    guest_files: dict[str, bytes] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    boots: int = 1


@dataclass
class FakeInstanceDriver:
    """See the module docstring. `soft_reboot_works` / `clean_shutdown_works` say whether
    the guest honours ACPI; `disks` are the disk sets that exist, by uuid."""

    domains: dict[str, FakeDomain] = field(default_factory=dict)
    disks: set[str] = field(default_factory=set)
    images: dict[str, str] = field(default_factory=dict)
    journal: list[tuple[str, str]] = field(default_factory=list)
    soft_reboot_works: bool = True
    clean_shutdown_works: bool = True
    unreadable: bool = False
    filter_interfaces: bool = False  # the host's firewall is off
    # Set: the hypervisor is unreachable; every read answers this error.
    unreachable: VirtactorError | None = None
    _failures: dict[str, Exception] = field(default_factory=dict)

    def fail_next(self, method: str, error: Exception | None = None) -> None:
        self._failures[method] = error or FakeDriverError(method=method, reason="injected")

    def _call(self, method: str, uuid: str) -> None:
        self.journal.append((method, uuid))
        error = self._failures.pop(method, None)
        if error is not None:
            raise error

    def _domain(self, uuid: str) -> FakeDomain:
        try:
            return self.domains[uuid]
        except KeyError:
            raise InstanceNotFound(uuid=uuid) from None

    def _require(self, uuid: str, method: str, *states: PowerState) -> FakeDomain:
        domain = self._domain(uuid)
        if domain.state not in states:
            raise FakeDriverError(method=method, reason=f"domain is {domain.state}")
        return domain

    def calls(self, uuid: str = UUID) -> list[str]:
        return [method for method, u in self.journal if u == uuid]

    # --- InstanceHypervisor ------------------------------------------------------------------

    async def read_power_state(self, uuid: str) -> PowerState | None:
        if self.unreadable or self.unreachable is not None:
            return None
        domain = self.domains.get(uuid)
        return PowerState.PENDING if domain is None else domain.state

    # --- InstanceDriver ----------------------------------------------------------------------

    async def spawn(
        self,
        instance: Instance,
        image_meta: ImageMeta,
        block_device_info: BlockDeviceMappingList | None,
        network_info: NetworkInfo | None,
        recovery: bytes,
        injected_files: Sequence[tuple[str, bytes]] = (),
        admin_password: str | None = None,
    ) -> None:
        self._call("spawn", instance.uuid)
        if instance.uuid in self.domains:
            raise FakeDriverError(method="spawn", reason="domain exists")
        domain = FakeDomain(instance.name, PowerState.RUNNING, recovery)
        domain.has_agent = bool(image_meta.properties.hw_qemu_guest_agent)
        domain.vifs = {vif.id: vif for vif in network_info or []}
        domain.console = "booted\n"
        self.domains[instance.uuid] = domain
        self.disks.add(instance.uuid)

    async def destroy(self, instance: Instance, destroy_disks: bool) -> bool:
        self._call("destroy", instance.uuid)
        existed = self.domains.pop(instance.uuid, None) is not None
        if destroy_disks:
            self.disks.discard(instance.uuid)
        return existed

    async def power_state(self, uuid: str) -> PowerState:
        if self.unreachable is not None:
            raise self.unreachable
        return self._domain(uuid).state

    async def info(self, uuid: str) -> InstanceInfo:
        self._call("info", uuid)
        domain = self._domain(uuid)
        return InstanceInfo(state=domain.state, num_cpu=1, max_mem_kb=65536, mem_kb=65536)

    async def shutdown(self, uuid: str, timeout: float, retry_interval: float) -> bool:
        self._call("shutdown", uuid)
        domain = self._require(uuid, "shutdown", PowerState.RUNNING)
        if not self.clean_shutdown_works:
            return False
        domain.state = PowerState.SHUTDOWN
        domain.console += "shutdown requested\n"
        return True

    async def power_off_hard(self, uuid: str) -> None:
        self._call("power_off_hard", uuid)
        self._domain(uuid).state = PowerState.SHUTDOWN

    async def power_on(self, uuid: str) -> None:
        self._call("power_on", uuid)
        domain = self._require(uuid, "power_on", PowerState.SHUTDOWN)
        domain.state = PowerState.RUNNING
        domain.managed_save = False
        domain.boots += 1

    async def reboot_soft(self, uuid: str, timeout: float) -> bool:
        self._call("reboot_soft", uuid)
        domain = self._require(uuid, "reboot_soft", PowerState.RUNNING)
        if self.soft_reboot_works:
            domain.boots += 1
        return self.soft_reboot_works

    async def reboot_hard(self, instance: Instance) -> None:
        self._call("reboot_hard", instance.uuid)
        domain = self._domain(instance.uuid)
        domain.state, domain.managed_save = PowerState.RUNNING, False
        domain.boots += 1

    async def pause(self, uuid: str) -> None:
        self._call("pause", uuid)
        self._require(uuid, "pause", PowerState.RUNNING).state = PowerState.PAUSED

    async def unpause(self, uuid: str) -> None:
        self._call("unpause", uuid)
        self._require(uuid, "unpause", PowerState.PAUSED).state = PowerState.RUNNING

    async def suspend(self, uuid: str) -> None:
        self._call("suspend", uuid)
        domain = self._require(uuid, "suspend", PowerState.RUNNING, PowerState.PAUSED)
        domain.state, domain.managed_save = PowerState.SHUTDOWN, True

    async def resume(self, uuid: str) -> None:
        self._call("resume", uuid)
        domain = self._require(uuid, "resume", PowerState.SHUTDOWN)
        if not domain.managed_save:
            raise FakeDriverError(method="resume", reason="no managed save")
        domain.state, domain.managed_save = PowerState.RUNNING, False

    async def attach_volume(self, uuid: str, connection: VolumeConnection, mountpoint: str) -> None:
        self._call("attach_volume", uuid)
        domain = self._domain(uuid)
        if mountpoint in domain.volumes and domain.volumes[mountpoint] != connection:
            raise FakeDriverError(method="attach_volume", reason=f"{mountpoint} in use")
        domain.volumes[mountpoint] = connection  # the same volume again: as libvirt's, done

    async def volume_at(self, uuid: str, connection: VolumeConnection, mountpoint: str) -> bool:
        self._call("volume_at", uuid)
        return self._domain(uuid).volumes.get(mountpoint) == connection

    async def detach_volume(
        self, uuid: str, connection: VolumeConnection, mountpoint: str, timeout: float
    ) -> None:
        self._call("detach_volume", uuid)
        if self._domain(uuid).volumes.pop(mountpoint, None) is None:
            raise FakeDriverError(method="detach_volume", reason=f"nothing at {mountpoint}")

    async def swap_volume(
        self,
        uuid: str,
        old: VolumeConnection,
        new: VolumeConnection,
        mountpoint: str,
        resize_to: int,
    ) -> None:
        self._call("swap_volume", uuid)
        domain = self._domain(uuid)
        if domain.volumes.get(mountpoint) != old:
            raise FakeDriverError(method="swap_volume", reason=f"{mountpoint} is not old")
        domain.volumes[mountpoint] = new

    async def attach_interface(self, uuid: str, vif: VIF, image_meta: ImageMeta | None) -> None:
        self._call("attach_interface", uuid)
        self._domain(uuid).vifs[vif.id] = vif

    async def detach_interface(self, uuid: str, vif: VIF, timeout: float) -> None:
        self._call("detach_interface", uuid)
        if self._domain(uuid).vifs.pop(vif.id, None) is None:
            raise FakeDriverError(method="detach_interface", reason=f"no port {vif.id}")

    async def snapshot(
        self, instance: Instance, image_id: str, progress: Callable[[int], Awaitable[None]]
    ) -> str:
        self._call("snapshot", instance.uuid)
        self._domain(instance.uuid)
        for percent in (0, 50, 100):
            await progress(percent)
        path = f"/images/{image_id}.qcow2"
        self.images[image_id] = path
        return path

    async def console_output(self, uuid: str, max_bytes: int) -> str:
        self._call("console_output", uuid)
        return self._domain(uuid).console[-max_bytes:]

    async def diagnostics(self, uuid: str) -> Diagnostics:
        self._call("diagnostics", uuid)
        domain = self._domain(uuid)
        return Diagnostics(state=domain.state, driver="fake", num_disks=len(domain.volumes) + 1)

    async def block_stats(self, uuid: str, disk_id: str) -> list[int]:
        self._call("block_stats", uuid)
        self._domain(uuid)
        return [1, 512, 2, 1024, 0]

    async def interface_stats(self, uuid: str, iface_id: str) -> list[int]:
        self._call("interface_stats", uuid)
        self._domain(uuid)
        return [100, 1, 0, 0, 200, 2, 0, 0]

    async def vnc_console(self, uuid: str) -> ConsoleInfo:
        self._call("vnc_console", uuid)
        self._domain(uuid)
        return ConsoleInfo(console_type="vnc", host="127.0.0.1", port=5900)

    async def spice_console(self, uuid: str) -> ConsoleInfo:
        self._call("spice_console", uuid)
        self._domain(uuid)
        return ConsoleInfo(console_type="spice", host="127.0.0.1", port=5901)

    async def serial_console(self, uuid: str) -> ConsoleInfo:
        self._call("serial_console", uuid)
        self._domain(uuid)
        return ConsoleInfo(console_type="serial", host="127.0.0.1", port=10000)

    async def store_recovery(self, uuid: str, recovery: bytes) -> None:
        self._call("store_recovery", uuid)
        self._domain(uuid).recovery = recovery

    async def load_recovery(self, uuid: str) -> bytes | None:
        self._call("load_recovery", uuid)
        domain = self.domains.get(uuid)
        return None if domain is None else domain.recovery

    async def volume_connector(self, instance: Instance) -> VolumeConnector:
        self._call("volume_connector", instance.uuid)
        return VolumeConnector(host="compute-1", ip="192.0.2.10")

    async def guest_agent_command(
        self, uuid: str, command: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        self._call("guest_agent_command", uuid)
        domain = self._domain(uuid)
        if not domain.has_agent:
            raise NotSupported(operation=command["execute"], reason="no guest agent channel")
        args = command.get("arguments", {})
        match command["execute"]:
            case "guest-set-user-password":
                password = base64.b64decode(args["password"]).decode()
                domain.passwords[args["username"]] = password
                return {"return": {}}
            case "guest-file-open":
                domain.guest_files[args["path"]] = b""
                return {"return": len(domain.guest_files)}
            case "guest-file-write":
                path = list(domain.guest_files)[args["handle"] - 1]
                domain.guest_files[path] += base64.b64decode(args["buf-b64"])
                return {"return": {"count": 1}}
            case "guest-file-close":
                return {"return": {}}
        raise FakeDriverError(method="guest_agent_command", reason=str(command))

    async def rescue(self, instance: Instance, image_meta: ImageMeta, recovery: bytes) -> None:
        self._call("rescue", instance.uuid)
        domain = self._domain(instance.uuid)
        domain.rescued, domain.state, domain.recovery = True, PowerState.RUNNING, recovery

    async def unrescue(self, instance: Instance, recovery: bytes) -> None:
        self._call("unrescue", instance.uuid)
        domain = self._domain(instance.uuid)
        if not domain.rescued:
            raise FakeDriverError(method="unrescue", reason="not rescued")
        domain.rescued, domain.state, domain.recovery = False, PowerState.RUNNING, recovery

    # --- the rest of the contract (RPC API 1.1) ------------------------------------------

    async def instance_on_disk(self, uuid: str) -> bool:
        self._call("instance_on_disk", uuid)
        return uuid in self.disks

    async def disk_info(self, uuid: str, volume_devices: list[str]) -> list[dict[str, Any]]:
        self._call("disk_info", uuid)
        self._domain(uuid)
        root = f"/instances/{uuid}/disk"
        return [
            {
                "type": "qcow2",
                "path": root,
                "virt_disk_size": 8 << 20,
                "backing_file": "base",
                "disk_size": 1 << 20,
                "over_committed_disk_size": 7 << 20,
            }
        ]

    async def disk_devices(self, uuid: str) -> list[str]:
        self._call("disk_devices", uuid)
        return ["vda", *(m.removeprefix("/dev/") for m in self._domain(uuid).volumes)]

    async def inject_nmi(self, uuid: str) -> None:
        self._call("inject_nmi", uuid)
        self._require(uuid, "inject_nmi", PowerState.RUNNING).console += "Uhhuh. NMI received\n"

    async def remove_partial_snapshot(self, image_id: str) -> list[str]:
        self._call("remove_partial_snapshot", image_id)
        return [p for p in self.images.pop(f".{image_id}.part", "").split() if p]

    async def snapshot_image(self, image_id: str) -> str | None:
        self._call("snapshot_image", image_id)
        return self.images.get(image_id)

    async def has_managed_save(self, uuid: str) -> bool:
        self._call("has_managed_save", uuid)
        return self._domain(uuid).managed_save


def check_protocol(driver: FakeInstanceDriver) -> InstanceDriver:
    """The fake is an InstanceDriver (a type checker verifies this assignment)."""
    return driver


@dataclass
class RecordingSink:
    """An EventSink that keeps every (topic, object) published, in order."""

    published: list[tuple[str, VersionedObject]] = field(default_factory=list)

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        self.published.append((topic, obj))

    def on(self, topic: str) -> list[VersionedObject]:
        return [obj for t, obj in self.published if t == topic]

    def states(self, uuid: str = UUID) -> list[dict[str, Any]]:
        """The `instance.<uuid>.state` events as {field: value} of what each changed
        (updated_at left out: it changes every time)."""
        return [
            {k: v for k, v in obj.obj_get_changes().items() if k not in ("updated_at", "uuid")}
            for obj in self.on(state_topic(uuid))
        ]

    def clear(self) -> None:
        self.published.clear()


def make_actor(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    uuid: str = UUID,
    **options: Any,
) -> tuple[ActorRef, InstanceActor]:
    """An instance actor over `driver` at `instance_address(uuid)`."""
    actor = InstanceActor(uuid, driver, sink, driver=driver, **options)
    return system.spawn(instance_address(uuid), actor), actor


async def spawned_actor(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    image: ImageMeta | None = None,
    network_info: NetworkInfo | None = None,
    **options: Any,
) -> tuple[ActorRef, InstanceActor]:
    """An instance actor (`make_actor`) whose guest it spawned from `image` (by default
    `image_meta()`), with the spawn's events cleared from `sink`."""
    ref, actor = make_actor(system, driver, sink, **options)
    args: dict[str, Any] = {"instance": instance(), "image_meta": image or image_meta()}
    if network_info is not None:
        args["network_info"] = network_info
    await ref.ask("spawn", args)
    sink.clear()
    return ref, actor


# --- samples -------------------------------------------------------------------------------


def flavor() -> Flavor:
    return Flavor(flavorid="m1.tiny", name="m1.tiny", memory_mb=64, vcpus=1, root_gb=1)


def instance(uuid: str = UUID, name: str = "instance-00000001", **values: Any) -> Instance:
    fields: dict[str, Any] = {
        "display_name": "test guest",
        "project_id": "project-1",
        "vm_state": "building",
        "flavor": flavor(),
        "memory_mb": 64,
        "vcpus": 1,
        "root_gb": 1,
    }
    return Instance(uuid=uuid, name=name, **(fields | values))


def image_meta(*, guest_agent: bool = False) -> ImageMeta:
    return ImageMeta(
        id=IMAGE_ID,
        name="busybox",
        disk_format="qcow2",
        properties=ImageMetaProps(hw_qemu_guest_agent=guest_agent),
    )


def file_volume(path: str = "/var/lib/volumes/vol-1", volume_id: str = "vol-1") -> VolumeConnection:
    return VolumeConnection(
        driver_volume_type="file",
        data=VolumeConnectionData(volume_id=volume_id, device_path=path),
        serial=volume_id,
    )


def nbd_volume(name: str = "vol-2", port: str = "10809") -> VolumeConnection:
    return VolumeConnection(
        driver_volume_type="nbd",
        data=VolumeConnectionData(volume_id=name, name=name, hosts=["127.0.0.1"], ports=[port]),
        serial=name,
    )


def vif(port_id: str = PORT_ID, mac: str = "fa:16:3e:00:00:01", devname: str = "tap0") -> VIF:
    return VIF(id=port_id, address=mac, type="tap", devname=devname, model="virtio")
