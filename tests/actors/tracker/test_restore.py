"""Restore: a tracker given the object backend (`objects`) makes again, at its first audit,
the move claims of the migrations in progress to its host, so an agent restarted during a
migration keeps the destination's share of it. Ended migrations hold nothing."""

from __future__ import annotations

import pytest

from actors import ActorSystem
from actors.tracker import Resources, move_key
from schemas.objects.enums import MigrationStatus
from schemas.store import PersistentObject, use_object_store
from tests.actors.tracker.fakes import (
    HOST,
    MIGRATION_1,
    MIGRATION_2,
    OTHER_HOST,
    UUID_A,
    UUID_B,
    FakeTrackerHypervisor,
    RecordingBackend,
    RecordingSink,
    flavor,
    instance,
    migration,
    sizes,
    spawn_tracker,
    usage,
)

NOTHING = Resources(0, 0, 0)
IN_PROGRESS = [
    MigrationStatus.QUEUED,
    MigrationStatus.PREPARING,
    MigrationStatus.RUNNING,
    MigrationStatus.POST_MIGRATING,
    MigrationStatus.FINISHED,  # a resize waiting to be confirmed holds the destination
]
ENDED = [
    MigrationStatus.COMPLETED,
    MigrationStatus.FAILED,
    MigrationStatus.CANCELLED,
    MigrationStatus.ERROR,
    MigrationStatus.CONFIRMED,
    MigrationStatus.REVERTED,
    MigrationStatus.DONE,
]


async def store(backend: RecordingBackend, *objects: PersistentObject) -> None:
    with use_object_store(backend.store):
        for obj in objects:
            await obj.create()


@pytest.mark.parametrize("status", IN_PROGRESS)
async def test_the_first_audit_makes_again_the_move_claim_of_a_migration_in_progress(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
    status: str,
) -> None:
    await store(backend, migration(status=status), instance(UUID_A, flavor(4, 4096, 20)))
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)

    node = await tracker.ask("update_available_resource")

    assert list(actor.claims) == [move_key(MIGRATION_1)]
    claim = actor.claims[move_key(MIGRATION_1)]
    assert (claim.instance_uuid, claim.migration_uuid) == (UUID_A, MIGRATION_1)
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used) == (4, 4096, 20)
    assert node.current_workload == 1
    assert actor.corrections == 0


async def test_a_restored_move_claim_can_be_confirmed_or_dropped(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(
        backend,
        migration(MIGRATION_1, UUID_A),
        migration(MIGRATION_2, UUID_B),
        instance(UUID_A),
        instance(UUID_B),
    )
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    await tracker.ask("update_available_resource")

    confirmed = await tracker.ask("confirm_move_claim", {"migration": migration(MIGRATION_1)})
    assert (confirmed.instance_uuid, confirmed.vcpus) == (UUID_A, 2)
    dropped = await tracker.ask("drop_move_claim", {"migration": migration(MIGRATION_2, UUID_B)})
    assert dropped is True
    assert list(actor.claims) == [UUID_A]
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_a_restored_move_claim_can_be_confirmed_by_the_first_message_after_a_restart(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    # The first audit of a restarted agent's tracker comes an audit_interval after its start;
    # the migration's confirmation may come before it.
    await store(backend, migration(), instance(UUID_A))
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)

    confirmed = await tracker.ask("confirm_move_claim", {"migration": migration()})

    assert (confirmed.instance_uuid, confirmed.migration_uuid) == (UUID_A, MIGRATION_1)
    assert list(actor.claims) == [UUID_A]
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_a_restored_move_claim_can_be_dropped_by_the_first_message_after_a_restart(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(backend, migration(), instance(UUID_A))
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)

    dropped = await tracker.ask("drop_move_claim", {"migration": migration()})

    # Not dropped before the claim is restored, only to be restored by the first audit and
    # held for good (nothing drops it again).
    assert dropped is True
    await tracker.ask("update_available_resource")
    assert actor.claims == {}
    assert await usage(tracker) == NOTHING


async def test_a_restored_move_claim_of_a_guest_already_here_is_not_counted_twice(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(backend, migration(), instance(UUID_A))
    hypervisor.run(UUID_A, sizes())  # the live migration had defined it here
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    await tracker.ask("update_available_resource")
    assert list(actor.claims) == [move_key(MIGRATION_1)]
    assert await usage(tracker) == Resources(2, 2048, 10)


@pytest.mark.parametrize("status", ENDED)
async def test_an_ended_migration_is_not_restored(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
    status: str,
) -> None:
    await store(backend, migration(status=status), instance(UUID_A))
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    await tracker.ask("update_available_resource")
    assert actor.claims == {}
    assert await usage(tracker) == NOTHING


async def test_a_migration_to_another_host_is_not_restored_here(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(backend, migration(source=HOST, dest=OTHER_HOST), instance(UUID_A))
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    await tracker.ask("update_available_resource")
    assert actor.claims == {}


async def test_move_claims_are_restored_once_only(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(backend, migration(MIGRATION_1, UUID_A), instance(UUID_A))
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    await tracker.ask("update_available_resource")
    await tracker.ask("drop_move_claim", {"migration": migration(MIGRATION_1)})
    await store(backend, migration(MIGRATION_2, UUID_B), instance(UUID_B))

    await tracker.ask("update_available_resource")

    assert actor.claims == {}
    assert [key for key, *_ in backend.class_calls].count("Migration") == 1


async def test_a_first_audit_without_the_backend_goes_on_and_restores_nothing(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(backend, migration(), instance(UUID_A))
    backend.down = True
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    node = await tracker.ask("update_available_resource")
    assert node.vcpus_used == 0
    assert actor.claims == {}
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_B)})
    assert claim.vcpus == 2


async def test_without_objects_nothing_is_looked_up(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    await store(backend, migration(), instance(UUID_A))
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("update_available_resource")
    assert actor.claims == {}
    assert backend.class_calls == []


async def test_a_migration_whose_instance_is_gone_does_not_stop_the_others_being_restored(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    # MIGRATION_1 comes first and its instance was deleted meanwhile: that one holds nothing,
    # but MIGRATION_2 (its instance stored) must still get its share of this host back.
    await store(
        backend, migration(MIGRATION_1, UUID_A), migration(MIGRATION_2, UUID_B), instance(UUID_B)
    )
    tracker, actor = spawn_tracker(system, hypervisor, sink, objects=backend)
    await tracker.ask("update_available_resource")
    assert list(actor.claims) == [move_key(MIGRATION_2)]
