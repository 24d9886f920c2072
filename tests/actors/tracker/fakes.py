"""An in-memory `TrackerHypervisor`, a recording sink and object backend, and samples for the
resource tracker's tests.

`FakeTrackerHypervisor` answers what the agent's `LibvirtHypervisor` would: the node's
`ComputeNode` (settable, `tests.schemas.samples.compute_node()` sized down by default), the
host's PCI devices and the domains' usage, each settable between two audits to inject drift.
`RecordingBackend` is the object backend over the codec (a `MemoryStore` that records every
write) which can be made to fail, so a test counts the saves and sees a failed one retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from actors import ActorRef, ActorSystem
from actors.addresses import TRACKER_ADDRESS
from actors.records import RecordSaver
from actors.tracker import (
    DomainUsage,
    PciDevice,
    Resources,
    ResourceTrackerActor,
    TrackerSettings,
    resources_topic,
)
from schemas.base import VersionedObject
from schemas.errors import VirtactorError
from schemas.objects.compute_node import ComputeNode
from schemas.objects.enums import MigrationStatus, MigrationType
from schemas.objects.flavor import Flavor
from schemas.objects.instance import Instance
from schemas.objects.migration import Migration
from schemas.remotable import ObjectIndirectionAPI
from tests.schemas.conftest import MemoryStore, WireIndirection
from tests.schemas.samples import NODE_UUID, compute_node

HOST = "compute-1"
OTHER_HOST = "compute-2"
NODENAME = "compute-1.example.org"
UUID_A = "a0000000-0000-4000-8000-00000000000a"
UUID_B = "b0000000-0000-4000-8000-00000000000b"
UUID_C = "c0000000-0000-4000-8000-00000000000c"
MIGRATION_1 = "d1000000-0000-4000-8000-000000000001"
MIGRATION_2 = "d2000000-0000-4000-8000-000000000002"

# With `settings()`: 8 vCPUs, 16384 MiB and 100 GiB to hand out; `flavor()` takes a quarter
# of the vCPUs and an eighth of the memory and a tenth of the disk.
NODE_VCPUS, NODE_MEMORY_MB, NODE_LOCAL_GB = 8, 16384, 100

# Intel: a NIC PF 8086:1572 with two VFs 8086:154c; NVIDIA GPUs 10de:1db4 on NUMA 0 and 1.
PF = "0000:81:00.0"
VF_1, VF_2 = "0000:81:02.0", "0000:81:02.1"
GPU_0A, GPU_0B, GPU_1A = "0000:3b:00.0", "0000:3c:00.0", "0000:d8:00.0"
HOST_NIC = "0000:01:00.0"  # the host's own NIC, not in pci_device_spec
PCI_SPEC = ("8086:1572", "8086:154c", "10de:1db4")
PCI_ALIAS = {"gpu": "10de:1db4", "nic-pf": "8086:1572:type-PF", "nic-vf": "8086:154c:type-VF"}


def pci_inventory() -> list[PciDevice]:
    """Three GPUs on two NUMA nodes, a PF with two VFs, and the host's NIC (unlisted)."""
    return [
        PciDevice(GPU_1A, "10de", "1db4", "type-PCI", 1, None),
        PciDevice(GPU_0B, "10de", "1db4", "type-PCI", 0, None),
        PciDevice(GPU_0A, "10de", "1db4", "type-PCI", 0, None),
        PciDevice(PF, "8086", "1572", "type-PF", 1, None),
        PciDevice(VF_1, "8086", "154c", "type-VF", 1, PF),
        PciDevice(VF_2, "8086", "154c", "type-VF", 1, PF),
        PciDevice(HOST_NIC, "14e4", "165f", "type-PCI", 0, None),
    ]


@dataclass
class FakeTrackerHypervisor:
    """See the module docstring. `reads` counts the audits' reads of the node's resources
    (`read` is set at each); `unreachable` set makes every read raise it."""

    node: ComputeNode = field(
        default_factory=lambda: compute_node(
            vcpus=NODE_VCPUS, memory_mb=NODE_MEMORY_MB, local_gb=NODE_LOCAL_GB
        )
    )
    pci_devices: list[PciDevice] = field(default_factory=list)
    domains: dict[str, DomainUsage] = field(default_factory=dict)
    nodename: str = NODENAME
    reads: int = 0
    read: asyncio.Event = field(default_factory=asyncio.Event)
    unreachable: VirtactorError | None = None

    def _check(self) -> None:
        if self.unreachable is not None:
            raise self.unreachable

    async def get_available_nodes(self) -> list[str]:
        self._check()
        return [self.nodename]

    async def get_available_resource(self, nodename: str) -> ComputeNode:
        self._check()
        assert nodename == self.nodename, f"asked for node {nodename!r}"
        self.reads += 1
        self.read.set()
        return self.node.obj_clone()

    async def get_pci_devices(self) -> list[PciDevice]:
        self._check()
        return list(self.pci_devices)

    async def list_domain_usage(self) -> list[DomainUsage]:
        self._check()
        return sorted(self.domains.values(), key=lambda usage: usage.uuid)

    def run(
        self,
        uuid: str,
        sizes: Resources,
        pci: Iterable[str] = (),
        *,
        recorded: bool = True,
    ) -> None:
        """A domain `uuid` holding `sizes` and the PCI devices `pci` appears (or changes)."""
        self.domains[uuid] = DomainUsage(uuid, sizes, tuple(pci), recorded=recorded)

    def remove(self, uuid: str) -> None:
        del self.domains[uuid]


@dataclass
class RecordingSink:
    """An EventSink that keeps every (topic, object) published, in order."""

    published: list[tuple[str, VersionedObject]] = field(default_factory=list)

    async def publish(self, topic: str, obj: VersionedObject) -> None:
        self.published.append((topic, obj.obj_clone()))

    def reports(self, host: str = HOST) -> list[ComputeNode]:
        """The nodes published on `host.<host>.resources`."""
        nodes = [obj for topic, obj in self.published if topic == resources_topic(host)]
        assert all(isinstance(node, ComputeNode) for node in nodes)
        return nodes  # type: ignore[return-value]

    def clear(self) -> None:
        self.published.clear()


class HypervisorDown(VirtactorError):
    msg_fmt = "libvirt is not answering"


class BackendDown(VirtactorError):
    msg_fmt = "no conductor answered"
    retryable = True


class RecordingBackend(WireIndirection):
    """The object backend over the codec; `store.puts` records every write. `down` set: every
    call raises `BackendDown`."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        super().__init__(store or MemoryStore())
        self.down = False

    async def object_action(
        self, obj: VersionedObject, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], Any]:
        if self.down:
            raise BackendDown()
        return await super().object_action(obj, method, args, kwargs)

    async def object_class_action(
        self, objname: str, objver: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self.down:
            raise BackendDown()
        return await super().object_class_action(objname, objver, method, args, kwargs)

    def node_saves(self) -> list[dict[str, Any]]:
        """The fields of each write of the node, in order."""
        return [
            changes
            for objname, key, changes in self.store.puts
            if (objname, key) == ("ComputeNode", NODE_UUID)
        ]

    def stored_node(self) -> dict[str, Any]:
        return self.store.rows[("ComputeNode", NODE_UUID)]


# --- samples -------------------------------------------------------------------------------


def settings(**overrides: Any) -> TrackerSettings:
    """Ratios of 1 and nothing reserved (the node's own numbers are the capacity), PCI
    devices as `pci_inventory()`'s, and an audit interval no test waits for."""
    values: dict[str, Any] = {
        "cpu_allocation_ratio": 1.0,
        "ram_allocation_ratio": 1.0,
        "disk_allocation_ratio": 1.0,
        "reserved_host_cpus": 0,
        "reserved_host_memory_mb": 0,
        "reserved_host_disk_mb": 0,
        "audit_interval": 3600.0,
        "pci_device_spec": PCI_SPEC,
        "pci_alias": PCI_ALIAS,
    }
    return TrackerSettings(**(values | overrides))


def flavor(
    vcpus: int = 2,
    memory_mb: int = 2048,
    root_gb: int = 10,
    *,
    pci: str | None = None,
    **values: Any,
) -> Flavor:
    """A flavor; `pci` is its `pci_passthrough:alias` extra spec."""
    extra_specs = {} if pci is None else {"pci_passthrough:alias": pci}
    fields: dict[str, Any] = {"flavorid": "m1.test", "name": "m1.test", "extra_specs": extra_specs}
    return Flavor(vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb, **(fields | values))


def sizes(of: Flavor | None = None) -> Resources:
    return Resources.of_flavor(of or flavor())


def instance(uuid: str = UUID_A, of: Flavor | None = None, **values: Any) -> Instance:
    """An instance of flavor `of` (default `flavor()`)."""
    return Instance(uuid=uuid, name=f"instance-{uuid[:8]}", flavor=of or flavor(), **values)


def migration(
    uuid: str = MIGRATION_1,
    instance_uuid: str = UUID_A,
    *,
    source: str | None = OTHER_HOST,
    dest: str | None = HOST,
    status: str = MigrationStatus.RUNNING,
) -> Migration:
    return Migration(
        uuid=uuid,
        instance_uuid=instance_uuid,
        migration_type=MigrationType.LIVE_MIGRATION,
        status=status,
        source_compute=source,
        dest_compute=dest,
    )


def spawn_tracker(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    tracker_settings: TrackerSettings | None = None,
    *,
    records: RecordSaver | None = None,
    objects: ObjectIndirectionAPI | None = None,
    host: str = HOST,
) -> tuple[ActorRef, ResourceTrackerActor]:
    """A tracker of `host` over `hypervisor` at `TRACKER_ADDRESS`."""
    actor = ResourceTrackerActor(
        host,
        tracker_settings or settings(),
        hypervisor,
        sink,
        records=records,
        objects=objects,
    )
    return system.spawn(TRACKER_ADDRESS, actor), actor


async def usage(tracker: ActorRef) -> Resources:
    """The node's vcpus_used, memory_mb_used and local_gb_used, as the tracker reports them."""
    node = await tracker.ask("get_compute_node")
    return Resources(node.vcpus_used, node.memory_mb_used, node.local_gb_used)


async def pools(tracker: ActorRef) -> dict[tuple[str, str, int | None, str], int]:
    """The node's PCI pools: {(vendor, product, NUMA node, type): free devices}."""
    node = await tracker.ask("get_compute_node")
    return {
        (p.vendor_id, p.product_id, p.numa_node, p.tags["dev_type"]): p.count
        for p in node.pci_device_pools.objects
    }
