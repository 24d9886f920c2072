"""Every outcome of `instance_claim` through the actor: what fits is held and returned as a
`ResourceClaim`; what does not fails with `ClaimFailed(resource, requested, free)` and holds
nothing; bad requests are refused before any effect; `abort_instance_claim` gives back."""

from __future__ import annotations

from typing import Any

import pytest

from actors import ActorSystem
from actors.tracker import ClaimFailed, InvalidClaim, PciAliasNotDefined, Resources
from schemas.errors import VirtactorError
from schemas.objects.claim import ResourceClaim
from schemas.objects.flavor import Flavor
from schemas.objects.instance import Instance
from tests.actors.tracker.fakes import (
    GPU_0A,
    GPU_0B,
    GPU_1A,
    HOST,
    NODE_LOCAL_GB,
    NODE_MEMORY_MB,
    NODE_VCPUS,
    UUID_A,
    UUID_B,
    VF_1,
    VF_2,
    FakeTrackerHypervisor,
    RecordingSink,
    flavor,
    instance,
    pci_inventory,
    pools,
    spawn_tracker,
    usage,
)
from tests.schemas.samples import NODE_UUID

NOTHING = Resources(0, 0, 0)
WHOLE_NODE = flavor(NODE_VCPUS, NODE_MEMORY_MB, NODE_LOCAL_GB)


async def test_a_claim_that_fits_returns_its_sizes_and_the_node(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    of = flavor(2, 2048, 10, ephemeral_gb=5, swap=512)

    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_A, of)})

    assert claim == ResourceClaim(
        instance_uuid=UUID_A,
        migration_uuid=None,
        host=HOST,
        node_uuid=NODE_UUID,
        vcpus=2,
        memory_mb=2048,
        disk_gb=16,  # 10 + 5 + 512 MiB of swap rounded up
        pci_devices=[],
    )
    assert await usage(tracker) == Resources(2, 2048, 16)
    assert list(actor.claims) == [UUID_A]


async def test_the_flavor_given_is_claimed_rather_than_the_instances_own(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    args = {"instance": instance(UUID_A, flavor(1, 512, 1)), "flavor": flavor(4, 4096, 40)}
    claim = await tracker.ask("instance_claim", args)
    assert (claim.vcpus, claim.memory_mb, claim.disk_gb) == (4, 4096, 40)
    assert await usage(tracker) == Resources(4, 4096, 40)


async def test_claims_of_several_instances_add_up(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(2, 2048, 10))})
    await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(3, 1024, 5))})
    node = await tracker.ask("get_compute_node")
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used) == (5, 3072, 15)
    assert (node.free_ram_mb, node.free_disk_gb) == (NODE_MEMORY_MB - 3072, NODE_LOCAL_GB - 15)
    # Both spawns still building: running here, and work in progress until an audit sees them.
    assert (node.running_vms, node.current_workload) == (2, 2)


# --- what does not fit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("too_big", "resource", "requested", "free", "what_is_free"),
    [
        (flavor(NODE_VCPUS - 1, 1024, 10), "vcpus", NODE_VCPUS - 1, NODE_VCPUS - 2, None),
        (flavor(1, NODE_MEMORY_MB, 10), "memory_mb", NODE_MEMORY_MB, NODE_MEMORY_MB - 2048, None),
        (flavor(1, 1024, NODE_LOCAL_GB), "disk_gb", NODE_LOCAL_GB, NODE_LOCAL_GB - 10, None),
        (flavor(1, 1024, 10, pci="gpu:4"), "pci:gpu", 4, 3, "gpu:3"),
    ],
    ids=["vcpus", "memory", "disk", "pci"],
)
async def test_a_claim_that_does_not_fit_names_the_resource_and_holds_nothing(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    too_big: Flavor,
    resource: str,
    requested: int,
    free: int,
    what_is_free: str | None,
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(2, 2048, 10))})
    before_pools = await pools(tracker)

    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, too_big)})

    assert (failed.value.resource, failed.value.requested, failed.value.free) == (
        resource,
        requested,
        free,
    )
    assert str(failed.value) == (
        f"claim for instance {UUID_B} failed: {resource} requested {requested}, only {free} free"
    )
    assert list(actor.claims) == [UUID_A]
    assert await usage(tracker) == Resources(2, 2048, 10)
    assert await pools(tracker) == before_pools
    # What is really free can still be claimed, to the last unit.
    rest = flavor(NODE_VCPUS - 2, NODE_MEMORY_MB - 2048, NODE_LOCAL_GB - 10, pci=what_is_free)
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_B, rest)})
    assert claim.vcpus == NODE_VCPUS - 2
    assert await usage(tracker) == Resources(NODE_VCPUS, NODE_MEMORY_MB, NODE_LOCAL_GB)


@pytest.mark.parametrize(
    ("exact", "one_more", "resource"),
    [
        (flavor(NODE_VCPUS, 1024, 10), flavor(1, 1, 0), "vcpus"),
        (flavor(1, NODE_MEMORY_MB, 10), flavor(1, 1, 0), "memory_mb"),
        (flavor(1, 1024, NODE_LOCAL_GB), flavor(1, 1, 1), "disk_gb"),
        (flavor(1, 1024, 10, pci="gpu:3"), flavor(1, 1, 0, pci="gpu"), "pci:gpu"),
    ],
    ids=["vcpus", "memory", "disk", "pci"],
)
async def test_an_exact_fit_succeeds_and_the_next_claim_fails(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    exact: Flavor,
    one_more: Flavor,
    resource: str,
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, exact)})
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, one_more)})
    assert (failed.value.resource, failed.value.free) == (resource, 0)


# --- asking again ----------------------------------------------------------------------------


async def test_claiming_again_with_the_same_sizes_returns_the_same_claim_held_once(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    of = flavor(2, 2048, 10, pci="gpu:1")
    first = await tracker.ask("instance_claim", {"instance": instance(UUID_A, of)})
    again = await tracker.ask("instance_claim", {"instance": instance(UUID_A, of)})
    assert again == first
    assert first.pci_devices == [GPU_0A]
    assert await usage(tracker) == Resources(2, 2048, 10)
    assert (await pools(tracker))[("10de", "1db4", 0, "type-PCI")] == 1


async def test_claiming_again_with_other_sizes_is_refused_and_keeps_the_first_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(2, 2048, 10))})
    with pytest.raises(InvalidClaim) as refused:
        await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(4, 2048, 10))})
    assert str(refused.value) == (
        f"instance_claim: argument flavor is invalid: instance {UUID_A} already holds a claim "
        "of other sizes here"
    )
    assert await usage(tracker) == Resources(2, 2048, 10)


# --- refused requests -------------------------------------------------------------------------


def _without(name: str) -> Flavor:
    values = {"flavorid": "f", "name": "f", "vcpus": 1, "memory_mb": 512, "root_gb": 1}
    del values[name]
    return Flavor(**values)


BAD_REQUESTS: list[tuple[str, dict[str, Any], type[VirtactorError], str]] = [
    (
        "no uuid",
        {"instance": Instance(flavor=flavor())},
        InvalidClaim,
        "instance_claim: argument instance is invalid: it has no uuid",
    ),
    (
        "no flavor",
        {"instance": Instance(uuid=UUID_B)},
        InvalidClaim,
        "instance_claim: argument flavor is invalid: no flavor given and the instance has none",
    ),
    (
        "no vcpus in the flavor",
        {"instance": instance(UUID_B, _without("vcpus"))},
        InvalidClaim,
        "instance_claim: argument flavor.vcpus is invalid: unset",
    ),
    (
        "no root_gb in the flavor",
        {"instance": instance(UUID_B, _without("root_gb"))},
        InvalidClaim,
        "instance_claim: argument flavor.root_gb is invalid: unset",
    ),
    (
        "vcpus 0",
        {"instance": instance(UUID_B, flavor(0, 2048, 10))},
        InvalidClaim,
        "instance_claim: argument flavor is invalid: a guest needs at least 1 vCPU and 1 MiB, "
        "got 0 and 2048",
    ),
    (
        "memory 0",
        {"instance": instance(UUID_B, flavor(1, 0, 10))},
        InvalidClaim,
        "instance_claim: argument flavor is invalid: a guest needs at least 1 vCPU and 1 MiB, "
        "got 1 and 0",
    ),
    (
        "negative root_gb",
        {"instance": instance(UUID_B, flavor(1, 512, -1))},
        InvalidClaim,
        "instance_claim: argument flavor.root_gb is invalid: negative",
    ),
    (
        "negative ephemeral_gb",
        {"instance": instance(UUID_B, flavor(1, 512, 1, ephemeral_gb=-20))},
        InvalidClaim,
        "instance_claim: argument flavor.ephemeral_gb is invalid: negative",
    ),
    (
        "negative swap",
        {"instance": instance(UUID_B, flavor(1, 512, 1, swap=-1))},
        InvalidClaim,
        "instance_claim: argument flavor.swap is invalid: negative",
    ),
    (
        "alias count 0",
        {"instance": instance(UUID_B, flavor(1, 512, 1, pci="gpu:0"))},
        InvalidClaim,
        "instance_claim: argument extra spec pci_passthrough:alias is invalid: 'gpu:0' is not "
        "ALIAS[:COUNT] with a COUNT of at least 1",
    ),
    (
        "alias count not a number",
        {"instance": instance(UUID_B, flavor(1, 512, 1, pci="nic-vf:1, gpu:two"))},
        InvalidClaim,
        "instance_claim: argument extra spec pci_passthrough:alias is invalid: 'gpu:two' is "
        "not ALIAS[:COUNT] with a COUNT of at least 1",
    ),
    (
        "unknown alias",
        {"instance": instance(UUID_B, flavor(1, 512, 1, pci="gpu:1,fpga:1"))},
        PciAliasNotDefined,
        f"claim for instance {UUID_B}: PCI alias 'fpga' is not defined on this host "
        "([resources] pci_alias)",
    ),
]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_a_bad_request_is_refused_and_holds_nothing(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    args: dict[str, Any],
    error: type[VirtactorError],
    message: str,
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    before_pools = await pools(tracker)

    with pytest.raises(error) as refused:
        await tracker.ask("instance_claim", args)

    assert type(refused.value) is error
    assert str(refused.value) == message
    assert actor.claims == {}
    assert await usage(tracker) == NOTHING
    assert await pools(tracker) == before_pools
    whole = flavor(NODE_VCPUS, NODE_MEMORY_MB, NODE_LOCAL_GB, pci="gpu:3,nic-vf:2")
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_A, whole)})
    assert claim.pci_devices == sorted([GPU_0A, GPU_0B, GPU_1A, VF_1, VF_2])


# --- abort -------------------------------------------------------------------------------------


async def test_abort_releases_the_claim_once(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    full_pools = await pools(tracker)
    of = flavor(2, 2048, 10, pci="gpu:2")
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, of)})

    assert await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)}) is True
    assert await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)}) is False

    assert actor.claims == {}
    assert await usage(tracker) == NOTHING
    assert await pools(tracker) == full_pools
    # All of it can be claimed again.
    await tracker.ask("instance_claim", {"instance": instance(UUID_B, WHOLE_NODE)})


async def test_aborting_what_was_never_claimed_returns_false(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    assert await tracker.ask("abort_instance_claim", {"instance": instance(UUID_B)}) is False
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_abort_without_a_uuid_is_refused(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    with pytest.raises(InvalidClaim, match=r"^abort_instance_claim: argument instance is invalid"):
        await tracker.ask("abort_instance_claim", {"instance": Instance(flavor=flavor())})
