"""Claims are messages to one actor, so concurrent ones never interleave: of many asked at
once, exactly as many succeed as fit, and the usage left is exactly theirs."""

from __future__ import annotations

import asyncio

from actors import ActorSystem
from actors.tracker import ClaimFailed
from schemas.objects.claim import ResourceClaim
from tests.actors.tracker.fakes import (
    NODE_MEMORY_MB,
    FakeTrackerHypervisor,
    RecordingSink,
    flavor,
    instance,
    pci_inventory,
    pools,
    settings,
    spawn_tracker,
)


def uuid_of(number: int) -> str:
    return f"{number:08x}-0000-4000-8000-000000000000"


async def test_of_50_concurrent_claims_where_10_fit_exactly_10_succeed(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    # Memory is what runs out: 10 x 1600 MiB of 16384 (vCPUs at ratio 4: 32; disk: 100 GiB).
    tracker, actor = spawn_tracker(system, hypervisor, sink, settings(cpu_allocation_ratio=4.0))
    of = flavor(1, 1600, 5)

    results = await asyncio.gather(
        *(tracker.ask("instance_claim", {"instance": instance(uuid_of(n), of)}) for n in range(50)),
        return_exceptions=True,
    )

    claims = [r for r in results if isinstance(r, ResourceClaim)]
    failures = [r for r in results if isinstance(r, ClaimFailed)]
    assert (len(claims), len(failures)) == (10, 40), [r for r in results if r not in claims]
    assert {(f.resource, f.requested, f.free) for f in failures} == {
        ("memory_mb", 1600, NODE_MEMORY_MB - 10 * 1600)
    }
    assert len({c.instance_uuid for c in claims}) == 10
    assert set(actor.claims) == {c.instance_uuid for c in claims}
    node = await tracker.ask("get_compute_node")
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used) == (10, 16000, 50)
    assert (node.running_vms, node.free_ram_mb) == (10, NODE_MEMORY_MB - 16000)


async def test_concurrent_claims_audits_and_aborts_leave_exactly_the_claims_held(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink, settings(cpu_allocation_ratio=4.0))
    of = flavor(1, 1600, 5)
    asks = []
    for n in range(30):
        asks.append(tracker.ask("instance_claim", {"instance": instance(uuid_of(n), of)}))
        if n % 3 == 0:
            asks.append(tracker.ask("update_available_resource"))
        if n % 2 == 0:
            asks.append(tracker.ask("abort_instance_claim", {"instance": instance(uuid_of(n))}))

    await asyncio.gather(*asks, return_exceptions=True)

    node = await tracker.ask("get_compute_node")
    assert len(actor.claims) <= 10
    assert node.memory_mb_used == 1600 * len(actor.claims)
    assert node.running_vms == len(actor.claims)


async def test_of_concurrent_pci_claims_each_device_goes_to_one_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    of = flavor(1, 256, 1, pci="gpu")

    results = await asyncio.gather(
        *(tracker.ask("instance_claim", {"instance": instance(uuid_of(n), of)}) for n in range(8)),
        return_exceptions=True,
    )

    claims = [r for r in results if isinstance(r, ResourceClaim)]
    assert len(claims) == 3
    assert sorted(d for c in claims for d in c.pci_devices) == sorted(
        {d for c in claims for d in c.pci_devices}
    )
    assert sum(isinstance(r, ClaimFailed) for r in results) == 5
    assert (await pools(tracker))[("10de", "1db4", 0, "type-PCI")] == 0
