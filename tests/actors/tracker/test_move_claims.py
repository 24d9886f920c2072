"""Move claims: the destination holds a migration's share keyed by the migration until it is
confirmed (the instance's claim here) or dropped (rollback); the source releases the
instance's claim once it has left, and never one this same migration brought."""

from __future__ import annotations

import pytest

from actors import ActorRef, ActorSystem
from actors.tracker import ClaimFailed, ClaimNotFound, InvalidClaim, Resources, move_key
from schemas.objects.claim import ResourceClaim
from schemas.objects.flavor import Flavor
from schemas.objects.migration import Migration
from tests.actors.tracker.fakes import (
    GPU_0A,
    HOST,
    MIGRATION_1,
    MIGRATION_2,
    NODE_VCPUS,
    OTHER_HOST,
    UUID_A,
    UUID_B,
    FakeTrackerHypervisor,
    RecordingSink,
    flavor,
    instance,
    migration,
    pci_inventory,
    pools,
    spawn_tracker,
    usage,
)
from tests.schemas.samples import NODE_UUID

NOTHING = Resources(0, 0, 0)
SMALL, LARGE = flavor(2, 2048, 10), flavor(4, 4096, 20)
RESIZE_HERE = migration(MIGRATION_1, UUID_A, source=HOST, dest=HOST)


async def move_claim(
    tracker: ActorRef, moving: Migration, of: Flavor | None = None, uuid: str = UUID_A
) -> ResourceClaim:
    args: dict[str, object] = {"instance": instance(uuid, SMALL), "migration": moving}
    if of is not None:
        args["flavor"] = of
    claim: ResourceClaim = await tracker.ask("move_claim", args)
    return claim


async def test_a_move_claim_holds_the_instances_sizes_keyed_by_the_migration(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    claim = await move_claim(tracker, migration())
    assert claim == ResourceClaim(
        instance_uuid=UUID_A,
        migration_uuid=MIGRATION_1,
        host=HOST,
        node_uuid=NODE_UUID,
        vcpus=2,
        memory_mb=2048,
        disk_gb=10,
        pci_devices=[],
    )
    assert list(actor.claims) == [move_key(MIGRATION_1)]
    node = await tracker.ask("get_compute_node")
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used) == (2, 2048, 10)
    # Not a guest of this host yet: work in progress, not a running VM.
    assert (node.running_vms, node.current_workload) == (0, 1)


async def test_a_resize_move_claim_holds_the_new_flavor(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    claim = await move_claim(tracker, migration(), LARGE)
    assert (claim.vcpus, claim.memory_mb, claim.disk_gb) == (4, 4096, 20)


async def test_a_move_claim_with_no_destination_named_is_taken_here(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    claim = await move_claim(tracker, migration(dest=None))
    assert claim.migration_uuid == MIGRATION_1


async def test_a_resize_on_one_host_holds_the_old_and_the_new_sizes(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, SMALL)})
    await move_claim(tracker, RESIZE_HERE, LARGE)
    assert set(actor.claims) == {UUID_A, move_key(MIGRATION_1)}
    assert await usage(tracker) == Resources(6, 6144, 30)


async def test_asking_again_for_the_same_migration_returns_the_same_move_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    first = await move_claim(tracker, migration())
    assert await move_claim(tracker, migration()) == first
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_a_move_claim_that_does_not_fit_holds_nothing(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    with pytest.raises(ClaimFailed) as failed:
        await move_claim(tracker, migration(), flavor(NODE_VCPUS + 1, 1024, 1))
    assert (failed.value.uuid, failed.value.resource) == (UUID_A, "vcpus")
    assert actor.claims == {}
    assert await usage(tracker) == NOTHING


@pytest.mark.parametrize(
    ("moving", "reason"),
    [
        (
            migration(dest=OTHER_HOST, source=HOST),
            f"its dest_compute is {OTHER_HOST!r}, this host is {HOST!r}",
        ),
        (migration(MIGRATION_1, UUID_B), f"it moves instance {UUID_B}, not {UUID_A}"),
        (Migration(instance_uuid=UUID_A, dest_compute=HOST), "it has no uuid"),
        (Migration(uuid=MIGRATION_1, dest_compute=HOST), "it has no instance_uuid"),
    ],
    ids=["other destination", "other instance", "no uuid", "no instance_uuid"],
)
async def test_a_move_claim_for_a_migration_that_is_not_this_instances_to_here_is_refused(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    moving: Migration,
    reason: str,
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    with pytest.raises(InvalidClaim) as refused:
        await move_claim(tracker, moving)
    assert str(refused.value) == f"move_claim: argument migration is invalid: {reason}"
    assert actor.claims == {}
    assert await usage(tracker) == NOTHING


# --- rollback ---------------------------------------------------------------------------------


async def test_dropping_a_move_claim_releases_it_once(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    full = await pools(tracker)
    claim = await move_claim(tracker, migration(), flavor(2, 2048, 10, pci="gpu"))
    assert claim.pci_devices == [GPU_0A]

    assert await tracker.ask("drop_move_claim", {"migration": migration()}) is True
    assert await tracker.ask("drop_move_claim", {"migration": migration()}) is False

    assert actor.claims == {}
    assert await usage(tracker) == NOTHING
    assert await pools(tracker) == full


async def test_dropping_a_resize_here_keeps_the_instances_own_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, SMALL)})
    await move_claim(tracker, RESIZE_HERE, LARGE)
    assert await tracker.ask("drop_move_claim", {"migration": RESIZE_HERE}) is True
    assert list(actor.claims) == [UUID_A]
    assert await usage(tracker) == Resources(2, 2048, 10)


# --- confirm ----------------------------------------------------------------------------------


async def test_confirming_turns_the_move_claim_into_the_instances_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await move_claim(tracker, migration(), flavor(2, 2048, 10, pci="gpu"))

    confirmed = await tracker.ask("confirm_move_claim", {"migration": migration()})

    assert confirmed == ResourceClaim(
        instance_uuid=UUID_A,
        migration_uuid=MIGRATION_1,
        host=HOST,
        node_uuid=NODE_UUID,
        vcpus=2,
        memory_mb=2048,
        disk_gb=10,
        pci_devices=[GPU_0A],
    )
    assert list(actor.claims) == [UUID_A]
    assert actor.pci.held_by(UUID_A) == (GPU_0A,)
    node = await tracker.ask("get_compute_node")
    assert (node.vcpus_used, node.running_vms, node.current_workload) == (2, 1, 0)
    # It is the instance's now: destroying the instance gives it all back.
    assert await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)}) is True
    assert await usage(tracker) == NOTHING
    assert actor.pci.held_by(UUID_A) == ()


async def test_confirming_a_resize_here_replaces_the_older_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask(
        "instance_claim", {"instance": instance(UUID_A, flavor(2, 2048, 10, pci="nic-vf"))}
    )
    await move_claim(tracker, RESIZE_HERE, flavor(4, 4096, 20, pci="gpu"))

    confirmed = await tracker.ask("confirm_move_claim", {"migration": RESIZE_HERE})

    assert (confirmed.vcpus, confirmed.pci_devices) == (4, [GPU_0A])
    assert list(actor.claims) == [UUID_A]
    assert await usage(tracker) == Resources(4, 4096, 20)
    assert actor.pci.held_by(UUID_A) == (GPU_0A,)  # the old flavor's VF is free again
    assert (await pools(tracker))[("8086", "154c", 1, "type-VF")] == 2


async def test_confirming_twice_returns_the_same_claim(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await move_claim(tracker, migration())
    first = await tracker.ask("confirm_move_claim", {"migration": migration()})
    assert await tracker.ask("confirm_move_claim", {"migration": migration()}) == first
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_confirming_an_unknown_migration_is_claim_not_found(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await move_claim(tracker, migration())
    with pytest.raises(ClaimNotFound) as missing:
        await tracker.ask("confirm_move_claim", {"migration": migration(MIGRATION_2)})
    assert str(missing.value) == (
        f"confirm_move_claim: there is no claim for migration {MIGRATION_2} on this host"
    )


async def test_a_dropped_move_claim_cannot_be_confirmed(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await move_claim(tracker, migration())
    await tracker.ask("drop_move_claim", {"migration": migration()})
    with pytest.raises(ClaimNotFound):
        await tracker.ask("confirm_move_claim", {"migration": migration()})
    assert await usage(tracker) == NOTHING


# --- the source -------------------------------------------------------------------------------


async def test_the_source_releases_the_instances_claim_once_it_has_left(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, SMALL)})
    await tracker.ask("instance_claim", {"instance": instance(UUID_B, SMALL)})
    leaving = migration(source=HOST, dest=OTHER_HOST)

    assert await tracker.ask("drop_move_claim_at_source", {"migration": leaving}) is True
    assert await tracker.ask("drop_move_claim_at_source", {"migration": leaving}) is False

    assert list(actor.claims) == [UUID_B]
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_the_source_does_not_release_a_claim_this_same_migration_brought(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, SMALL)})
    await move_claim(tracker, RESIZE_HERE, LARGE)
    await tracker.ask("confirm_move_claim", {"migration": RESIZE_HERE})

    assert await tracker.ask("drop_move_claim_at_source", {"migration": RESIZE_HERE}) is False

    assert list(actor.claims) == [UUID_A]
    assert await usage(tracker) == Resources(4, 4096, 20)


async def test_dropping_at_a_source_that_is_another_host_is_refused(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, SMALL)})
    with pytest.raises(InvalidClaim) as refused:
        await tracker.ask("drop_move_claim_at_source", {"migration": migration()})
    assert str(refused.value) == (
        "drop_move_claim_at_source: argument migration is invalid: its source_compute is "
        f"{OTHER_HOST!r}, this host is {HOST!r}"
    )
    assert list(actor.claims) == [UUID_A]
