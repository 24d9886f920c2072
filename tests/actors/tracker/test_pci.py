"""PCI passthrough accounting with a made-up inventory (`fakes.pci_inventory()`: three GPUs on
NUMA nodes 0 and 1, a PF with two VFs, the host's own NIC): only devices `pci_device_spec`
names are handed out, pools count free devices, a claim gets specific addresses all or
nothing, and a PF and its VFs exclude each other."""

from __future__ import annotations

import pytest

from actors import ActorRef, ActorSystem
from actors.tracker import ClaimFailed, PciDevice, PciInventory
from actors.tracker.pci import pci_requests
from actors.tracker.settings import PciAlias, PciSpec
from schemas.objects.claim import ResourceClaim
from tests.actors.tracker.fakes import (
    GPU_0A,
    GPU_0B,
    GPU_1A,
    PCI_ALIAS,
    PF,
    UUID_A,
    UUID_B,
    UUID_C,
    VF_1,
    VF_2,
    FakeTrackerHypervisor,
    RecordingSink,
    flavor,
    instance,
    pci_inventory,
    pools,
    settings,
    spawn_tracker,
    usage,
)

GPU_NUMA_0 = ("10de", "1db4", 0, "type-PCI")
GPU_NUMA_1 = ("10de", "1db4", 1, "type-PCI")
NIC_PF = ("8086", "1572", 1, "type-PF")
NIC_VF = ("8086", "154c", 1, "type-VF")
ALL_FREE = {GPU_NUMA_0: 2, GPU_NUMA_1: 1, NIC_PF: 1, NIC_VF: 2}


@pytest.fixture
def hypervisor() -> FakeTrackerHypervisor:
    return FakeTrackerHypervisor(pci_devices=pci_inventory())


async def claim(tracker: ActorRef, uuid: str, alias: str) -> list[str]:
    """The addresses `uuid` gets claiming 1 vCPU, 512 MiB, 1 GiB and the PCI spec `alias`."""
    args = {"instance": instance(uuid, flavor(1, 512, 1, pci=alias))}
    resource_claim: ResourceClaim = await tracker.ask("instance_claim", args)
    return resource_claim.pci_devices


async def test_pools_count_the_assignable_devices_per_vendor_product_numa_and_type(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    assert await pools(tracker) == ALL_FREE  # the host's NIC (14e4:165f) is in no pool
    node = await tracker.ask("get_compute_node")
    assert [(p.vendor_id, p.product_id, p.numa_node) for p in node.pci_device_pools] == [
        ("10de", "1db4", 0),
        ("10de", "1db4", 1),
        ("8086", "154c", 1),
        ("8086", "1572", 1),
    ]


async def test_without_a_pci_device_spec_no_device_is_assignable(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, settings(pci_device_spec=()))
    assert await pools(tracker) == {}
    with pytest.raises(ClaimFailed) as failed:
        await claim(tracker, UUID_A, "gpu")
    assert (failed.value.resource, failed.value.requested, failed.value.free) == ("pci:gpu", 1, 0)


async def test_a_device_outside_pci_device_spec_is_never_handed_out(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    aliased = settings(pci_alias=PCI_ALIAS | {"host-nic": "14e4:165f"})
    tracker, _ = spawn_tracker(system, hypervisor, sink, aliased)
    with pytest.raises(ClaimFailed) as failed:
        await claim(tracker, UUID_A, "host-nic")
    assert (failed.value.resource, failed.value.free) == ("pci:host-nic", 0)


async def test_a_wildcard_spec_makes_every_device_of_the_vendor_assignable(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, settings(pci_device_spec=("10de:*",)))
    assert await pools(tracker) == {GPU_NUMA_0: 2, GPU_NUMA_1: 1}


async def test_a_claim_gets_specific_addresses_numa_node_0_first(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    assert await claim(tracker, UUID_A, "gpu:2") == [GPU_0A, GPU_0B]
    assert await pools(tracker) == ALL_FREE | {GPU_NUMA_0: 0}
    assert await claim(tracker, UUID_B, "gpu") == [GPU_1A]
    # A pool all in use is still reported, with 0.
    assert await pools(tracker) == ALL_FREE | {GPU_NUMA_0: 0, GPU_NUMA_1: 0}


async def test_a_claim_of_several_aliases_gets_a_device_of_each(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    assert await claim(tracker, UUID_A, "gpu:1, nic-vf:2") == sorted([GPU_0A, VF_1, VF_2])


async def test_a_pf_is_not_free_while_one_of_its_vfs_is_held(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    assert await claim(tracker, UUID_A, "nic-vf") == [VF_1]
    assert await pools(tracker) == ALL_FREE | {NIC_PF: 0, NIC_VF: 1}
    with pytest.raises(ClaimFailed) as failed:
        await claim(tracker, UUID_B, "nic-pf")
    assert (failed.value.resource, failed.value.requested, failed.value.free) == (
        "pci:nic-pf",
        1,
        0,
    )
    # The other VF is still free.
    assert await claim(tracker, UUID_C, "nic-vf") == [VF_2]


async def test_vfs_are_not_free_while_their_pf_is_held(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    assert await claim(tracker, UUID_A, "nic-pf") == [PF]
    assert await pools(tracker) == ALL_FREE | {NIC_PF: 0, NIC_VF: 0}
    with pytest.raises(ClaimFailed) as failed:
        await claim(tracker, UUID_B, "nic-vf")
    assert (failed.value.resource, failed.value.free) == ("pci:nic-vf", 0)


async def test_releasing_the_vfs_frees_their_pf_again(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await claim(tracker, UUID_A, "nic-vf")
    await claim(tracker, UUID_B, "nic-vf")
    await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)})
    assert await pools(tracker) == ALL_FREE | {NIC_PF: 0, NIC_VF: 1}
    await tracker.ask("abort_instance_claim", {"instance": instance(UUID_B)})
    assert await pools(tracker) == ALL_FREE
    assert await claim(tracker, UUID_C, "nic-pf") == [PF]


async def test_a_request_for_more_devices_than_are_free_fails_whole(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await claim(tracker, UUID_A, "gpu:2")
    held = await pools(tracker)

    with pytest.raises(ClaimFailed) as failed:
        await claim(tracker, UUID_B, "gpu:2")
    assert (failed.value.resource, failed.value.requested, failed.value.free) == ("pci:gpu", 2, 1)
    # The second request fails after the first was met: the first is given back too.
    with pytest.raises(ClaimFailed):
        await claim(tracker, UUID_B, "nic-vf:2,gpu:2")

    assert await pools(tracker) == held
    assert list(actor.claims) == [UUID_A]
    assert (await usage(tracker)).vcpus == 1
    assert await claim(tracker, UUID_B, "gpu") == [GPU_1A]


async def test_a_release_gives_the_devices_back(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await claim(tracker, UUID_A, "gpu:3,nic-vf:2")
    assert await pools(tracker) == {GPU_NUMA_0: 0, GPU_NUMA_1: 0, NIC_PF: 0, NIC_VF: 0}
    assert await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)})
    assert await pools(tracker) == ALL_FREE
    assert await claim(tracker, UUID_B, "gpu:3,nic-vf:2") == sorted(
        [GPU_0A, GPU_0B, GPU_1A, VF_1, VF_2]
    )


async def test_devices_that_disappear_from_the_host_leave_the_pools_at_the_next_audit(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await pools(tracker)
    hypervisor.pci_devices = [d for d in pci_inventory() if d.address != GPU_1A]
    await tracker.ask("update_available_resource")
    assert await pools(tracker) == {GPU_NUMA_0: 2, NIC_PF: 1, NIC_VF: 2}


async def test_a_claims_devices_stay_held_across_audits(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await claim(tracker, UUID_A, "gpu:2")
    await tracker.ask("update_available_resource")
    await tracker.ask("update_available_resource")
    assert actor.pci.held_by(UUID_A) == (GPU_0A, GPU_0B)
    assert await pools(tracker) == ALL_FREE | {GPU_NUMA_0: 0}


# --- PciInventory alone ----------------------------------------------------------------------


def test_pci_requests_read_novas_alias_extra_spec_in_the_order_written() -> None:
    aliases = {"gpu": PciAlias("gpu", "10de", "1db4"), "vf": PciAlias("vf", "8086", "154c")}
    requests = pci_requests(
        UUID_A, "instance_claim", {"pci_passthrough:alias": " vf:2 , gpu"}, aliases
    )
    assert [(r.alias.name, r.count) for r in requests] == [("vf", 2), ("gpu", 1)]
    assert pci_requests(UUID_A, "instance_claim", {}, aliases) == []
    assert pci_requests(UUID_A, "instance_claim", {"pci_passthrough:alias": " "}, aliases) == []


def test_one_claim_never_gets_a_pf_together_with_one_of_its_vfs() -> None:
    # Some devices give their VFs the PF's own vendor and product ids; an alias of those ids
    # and no type matches both. The exclusion must hold within one claim as between claims.
    pf = PciDevice("0000:05:00.0", "15b3", "1018", "type-PF", 0, None)
    vf = PciDevice("0000:05:00.1", "15b3", "1018", "type-VF", 0, pf.address)
    other = PciDevice("0000:06:00.0", "15b3", "1018", "type-PCI", 0, None)
    inventory = PciInventory([pf, vf, other], [PciSpec("15b3", "*")])
    alias = PciAlias("nic", "15b3", "1018")
    requests = pci_requests(
        UUID_A, "instance_claim", {"pci_passthrough:alias": "nic:2"}, {"nic": alias}
    )

    taken = inventory.allocate(UUID_A, UUID_A, requests)

    assert not {pf.address, vf.address} <= set(taken), taken
    assert sorted(taken) in ([pf.address, other.address], [vf.address, other.address])
