"""What the host keeps for itself and the allocation ratios, through the actor: reserved
memory and disk are counted as used (nova's way), reserved CPUs lower the capacity instead,
and a ratio multiplies what fits."""

from __future__ import annotations

import pytest

from actors import ActorSystem
from actors.tracker import ClaimFailed, Resources, TrackerSettings
from schemas.objects.flavor import Flavor
from tests.actors.tracker.fakes import (
    NODE_LOCAL_GB,
    NODE_MEMORY_MB,
    NODE_VCPUS,
    UUID_A,
    UUID_B,
    FakeTrackerHypervisor,
    RecordingSink,
    flavor,
    instance,
    settings,
    spawn_tracker,
    usage,
)


async def test_reserved_host_memory_is_counted_in_memory_used_and_not_handed_out(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, settings(reserved_host_memory_mb=1024))
    node = await tracker.ask("get_compute_node")
    assert (node.memory_mb_used, node.free_ram_mb) == (1024, NODE_MEMORY_MB - 1024)

    await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(1, 15360, 1))})
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(1, 1, 1))})
    assert (failed.value.resource, failed.value.requested, failed.value.free) == (
        "memory_mb",
        1,
        0,
    )
    node = await tracker.ask("get_compute_node")
    assert (node.memory_mb_used, node.free_ram_mb) == (NODE_MEMORY_MB, 0)


async def test_reserved_host_disk_is_counted_in_whole_gib_in_disk_used(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, settings(reserved_host_disk_mb=1536))
    node = await tracker.ask("get_compute_node")
    assert (node.local_gb_used, node.free_disk_gb) == (2, NODE_LOCAL_GB - 2)

    await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(1, 512, 98))})
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(1, 512, 1))})
    assert (failed.value.resource, failed.value.free) == ("disk_gb", 0)
    assert (await usage(tracker)).disk_gb == NODE_LOCAL_GB


async def test_reserved_cpus_lower_the_capacity_but_are_not_counted_as_used(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, settings(reserved_host_cpus=2))
    assert (await tracker.ask("get_compute_node")).vcpus_used == 0

    await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(NODE_VCPUS - 2))})
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(1))})
    assert (failed.value.resource, failed.value.requested, failed.value.free) == ("vcpus", 1, 0)
    assert (await tracker.ask("get_compute_node")).vcpus_used == NODE_VCPUS - 2


@pytest.mark.parametrize(
    ("ratios", "double"),
    [
        ({"cpu_allocation_ratio": 2.0}, flavor(NODE_VCPUS * 2, 1024, 1)),
        ({"ram_allocation_ratio": 2.0}, flavor(1, NODE_MEMORY_MB * 2, 1)),
        ({"disk_allocation_ratio": 2.0}, flavor(1, 1024, NODE_LOCAL_GB * 2)),
    ],
    ids=["cpu", "ram", "disk"],
)
async def test_a_ratio_of_two_doubles_what_fits(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    ratios: dict[str, float],
    double: Flavor,
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, settings(**ratios))
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_A, double)})
    assert Resources(claim.vcpus, claim.memory_mb, claim.disk_gb) == await usage(tracker)
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(1, 1, 1))})
    assert failed.value.free == 0


async def test_the_node_reports_the_ratios_in_force(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    chosen = settings(
        cpu_allocation_ratio=16.0, ram_allocation_ratio=1.5, disk_allocation_ratio=0.9
    )
    tracker, _ = spawn_tracker(system, hypervisor, sink, chosen)
    node = await tracker.ask("get_compute_node")
    assert (node.cpu_allocation_ratio, node.ram_allocation_ratio, node.disk_allocation_ratio) == (
        16.0,
        1.5,
        0.9,
    )
    # The totals stay the hypervisor's: the ratios multiply them only when claiming.
    assert (node.vcpus, node.memory_mb, node.local_gb) == (
        NODE_VCPUS,
        NODE_MEMORY_MB,
        NODE_LOCAL_GB,
    )


async def test_novas_defaults_hand_out_four_vcpus_per_cpu_and_keep_512_mib(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, TrackerSettings(audit_interval=3600.0))
    fits = flavor(NODE_VCPUS * 4, NODE_MEMORY_MB - 512, NODE_LOCAL_GB)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, fits)})
    assert await usage(tracker) == Resources(NODE_VCPUS * 4, NODE_MEMORY_MB, NODE_LOCAL_GB)
