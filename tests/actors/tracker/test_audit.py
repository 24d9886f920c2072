"""The audit (`update_available_resource`): usage rebuilt from the hypervisor and the claims
in flight, drift corrected (a recorded guest with no claim is claimed, a claim whose guest
was seen and is gone is dropped, a spawn still building is kept), guests this agent did not
build left uncounted, PCI devices in use held; the node saved and published only when a
number changed, and a failed save made whole at the next report."""

from __future__ import annotations

import asyncio

import pytest

from actors import ActorSystem
from actors.records import RecordSaver
from actors.tracker import ClaimFailed, InvalidClaim, Resources, move_key
from schemas.objects.compute_node import ComputeNode
from tests.actors.tracker.fakes import (
    GPU_0A,
    GPU_0B,
    HOST,
    HOST_NIC,
    NODE_LOCAL_GB,
    NODE_MEMORY_MB,
    NODE_VCPUS,
    UUID_A,
    UUID_B,
    UUID_C,
    FakeTrackerHypervisor,
    HypervisorDown,
    RecordingBackend,
    RecordingSink,
    flavor,
    instance,
    migration,
    pci_inventory,
    pools,
    settings,
    sizes,
    spawn_tracker,
    usage,
)
from tests.schemas.samples import NODE_UUID, compute_node

NOTHING = Resources(0, 0, 0)
NEW_NODE_UUID = "4d0f2e30-5c6b-4d7e-9f80-a12b3c4d5e6f"
GPU_NUMA_0 = ("10de", "1db4", 0, "type-PCI")
# What a guest's arrival or departure changes in the node's report.
USAGE_FIELDS = {
    "vcpus_used",
    "memory_mb_used",
    "local_gb_used",
    "free_ram_mb",
    "free_disk_gb",
    "running_vms",
}


# --- drift ------------------------------------------------------------------------------------


async def test_a_recorded_domain_with_no_claim_is_claimed_from_its_record(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("update_available_resource")
    hypervisor.run(UUID_B, Resources(2, 2048, 10))

    node = await tracker.ask("update_available_resource")

    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used) == (2, 2048, 10)
    assert (node.running_vms, node.current_workload) == (1, 0)
    assert actor.claims[UUID_B].resources == Resources(2, 2048, 10)
    assert actor.corrections == 1
    # Its instance actor claiming the same sizes gets that claim; other sizes are refused.
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(2, 2048, 10))})
    assert claim.vcpus == 2
    with pytest.raises(InvalidClaim):
        await tracker.ask("instance_claim", {"instance": instance(UUID_B, flavor(1, 2048, 10))})
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_what_an_unclaimed_recorded_domain_holds_is_not_handed_out_again(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.run(UUID_B, Resources(NODE_VCPUS - 1, 1024, 10))
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(2))})
    assert (failed.value.resource, failed.value.free) == ("vcpus", 1)


async def test_a_claim_whose_domain_was_seen_and_is_gone_is_dropped(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    claim = await tracker.ask(
        "instance_claim", {"instance": instance(UUID_A, flavor(2, 2048, 10, pci="gpu"))}
    )
    hypervisor.run(UUID_A, sizes(), claim.pci_devices)
    await tracker.ask("update_available_resource")
    assert actor.claims[UUID_A].seen
    hypervisor.remove(UUID_A)  # destroyed behind the agent's back

    node = await tracker.ask("update_available_resource")

    assert actor.claims == {}
    assert actor.corrections == 1
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used, node.running_vms) == (
        0,
        0,
        0,
        0,
    )
    assert (await pools(tracker))[GPU_NUMA_0] == 2


async def test_a_claim_never_seen_is_a_spawn_in_flight_and_is_kept(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    for _ in range(3):
        node = await tracker.ask("update_available_resource")
    assert list(actor.claims) == [UUID_A]
    assert not actor.claims[UUID_A].seen
    assert actor.corrections == 0
    assert (node.vcpus_used, node.current_workload) == (2, 1)

    hypervisor.run(UUID_A, sizes())  # the spawn defined its domain
    node = await tracker.ask("update_available_resource")
    assert actor.claims[UUID_A].seen
    assert (node.vcpus_used, node.current_workload) == (2, 0)

    hypervisor.remove(UUID_A)
    await tracker.ask("update_available_resource")
    assert actor.claims == {}


async def test_a_built_instance_is_no_longer_work_in_progress_and_is_dropped_when_gone(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    sink.clear()

    await tracker.ask("instance_built", {"instance": instance(UUID_A)})

    [report] = sink.reports()
    assert report.obj_what_changed() == {"current_workload"}
    assert report.current_workload == 0
    await tracker.ask("instance_built", {"instance": instance(UUID_B)})  # no claim: no-op
    assert len(sink.reports()) == 1
    # Its domain is not there (gone before any audit saw it): the claim goes.
    await tracker.ask("update_available_resource")
    assert actor.claims == {}
    assert actor.corrections == 1


async def test_domains_without_this_agents_record_are_not_counted_but_reported(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.run(UUID_B, Resources(4, 4096, 0), recorded=False)
    hypervisor.run(UUID_C, Resources(NODE_VCPUS, NODE_MEMORY_MB, 0), recorded=False)
    tracker, actor = spawn_tracker(system, hypervisor, sink)

    node = await tracker.ask("update_available_resource")

    assert node.stats == {"untracked_domains": "2"}
    assert actor.untracked == [UUID_B, UUID_C]
    assert (node.vcpus_used, node.memory_mb_used, node.local_gb_used) == (0, 0, 0)
    assert actor.claims == {}
    assert actor.corrections == 0
    # The operator sets their share aside with reserved_host_*; the tracker hands out all.
    whole = flavor(NODE_VCPUS, NODE_MEMORY_MB, NODE_LOCAL_GB)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A, whole)})

    hypervisor.remove(UUID_B)
    node = await tracker.ask("update_available_resource")
    assert node.stats == {"untracked_domains": "1"}


async def test_a_claimed_spawn_whose_record_is_not_readable_yet_is_counted_once(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    hypervisor.run(UUID_A, Resources(2, 2048, 0), recorded=False)
    node = await tracker.ask("update_available_resource")
    assert node.stats == {"untracked_domains": "0"}
    assert actor.claims[UUID_A].seen
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_an_incoming_guest_with_a_move_claim_is_not_counted_twice(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("move_claim", {"instance": instance(UUID_A), "migration": migration()})
    hypervisor.run(UUID_A, sizes())  # the live migration defined it here
    await tracker.ask("update_available_resource")
    assert list(actor.claims) == [move_key(migration().uuid)]
    assert actor.corrections == 0
    assert await usage(tracker) == Resources(2, 2048, 10)


async def test_pci_devices_a_domain_uses_are_held(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    # A guest of this agent using a GPU it has no claim of, and one not assignable at all.
    hypervisor.run(UUID_B, sizes(), [GPU_0A, HOST_NIC])
    tracker, actor = spawn_tracker(system, hypervisor, sink)

    await tracker.ask("update_available_resource")

    assert actor.pci.held_by(UUID_B) == (GPU_0A,)
    assert (await pools(tracker))[GPU_NUMA_0] == 1
    with pytest.raises(ClaimFailed) as failed:
        await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(pci="gpu:3"))})
    assert (failed.value.resource, failed.value.free) == ("pci:gpu", 2)
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(pci="gpu"))})
    assert claim.pci_devices == [GPU_0B]


async def test_pci_devices_a_domain_uses_beyond_its_claim_are_held_for_it(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.pci_devices = pci_inventory()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    hypervisor.run(UUID_A, sizes(), [GPU_0B])  # hot-plugged behind the agent's back
    await tracker.ask("update_available_resource")
    assert actor.pci.held_by(UUID_A) == (GPU_0B,)
    await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)})
    assert (await pools(tracker))[GPU_NUMA_0] == 2


async def test_pci_devices_a_domain_not_built_by_this_agent_uses_are_not_handed_out(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    # Its sizes are not counted (reserved_host_* covers them), but a device it holds is
    # busy: handing it to a new guest can only make that spawn fail in libvirt.
    hypervisor.pci_devices = pci_inventory()
    hypervisor.run(UUID_C, sizes(), [GPU_0A], recorded=False)
    tracker, _ = spawn_tracker(system, hypervisor, sink)

    await tracker.ask("update_available_resource")

    assert (await pools(tracker))[GPU_NUMA_0] == 1
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_A, flavor(pci="gpu"))})
    assert claim.pci_devices == [GPU_0B]


# --- a hypervisor that fails ------------------------------------------------------------------


async def test_an_audit_the_hypervisor_fails_changes_nothing_and_the_next_one_runs(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    hypervisor.unreachable = HypervisorDown()
    with pytest.raises(HypervisorDown):
        await tracker.ask("update_available_resource")
    assert list(actor.claims) == [UUID_A]

    hypervisor.unreachable = None
    node = await tracker.ask("update_available_resource")
    assert node.vcpus_used == 2


async def test_a_claim_before_any_audit_with_the_hypervisor_unreachable_holds_nothing(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    hypervisor.unreachable = HypervisorDown()
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    with pytest.raises(HypervisorDown):
        await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    assert actor.claims == {}
    hypervisor.unreachable = None
    claim = await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    assert claim.vcpus == 2


# --- saving and publishing --------------------------------------------------------------------


async def test_the_first_report_saves_the_whole_node(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=RecordSaver(backend))
    await tracker.ask("update_available_resource")
    assert len(backend.node_saves()) == 1
    stored = backend.stored_node()
    assert (stored["uuid"], stored["host"], stored["hypervisor_hostname"]) == (
        NODE_UUID,
        HOST,
        "compute-1.example.org",
    )
    assert (stored["vcpus"], stored["memory_mb"], stored["local_gb"]) == (
        NODE_VCPUS,
        NODE_MEMORY_MB,
        NODE_LOCAL_GB,
    )
    assert (stored["vcpus_used"], stored["memory_mb_used"], stored["free_ram_mb"]) == (
        0,
        0,
        NODE_MEMORY_MB,
    )
    assert stored["stats"] == {"untracked_domains": "0"}


async def test_the_first_report_publishes_the_whole_node(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    # A subscriber learns the node from its first report: its totals as well as its usage,
    # whatever change marks the hypervisor's object carried.
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("update_available_resource")
    [first] = sink.reports()
    assert first.uuid == NODE_UUID
    missing = {"host", "vcpus", "memory_mb", "local_gb"} - first.obj_what_changed()
    assert not missing, f"the first report lacks {sorted(missing)}"


async def test_a_new_node_uuid_is_saved_whole_under_its_uuid(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    # The hypervisor reports another node (its uuid changed): the backend has no record of
    # it yet, so its first save must be whole, as the tracker's first save is.
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=RecordSaver(backend))
    await tracker.ask("update_available_resource")
    hypervisor.node = compute_node(
        uuid=NEW_NODE_UUID, vcpus=NODE_VCPUS, memory_mb=NODE_MEMORY_MB, local_gb=NODE_LOCAL_GB
    )

    node = await tracker.ask("update_available_resource")

    assert node.uuid == NEW_NODE_UUID
    stored = backend.store.rows[("ComputeNode", NEW_NODE_UUID)]
    assert {"host", "vcpus", "memory_mb", "local_gb", "vcpus_used"} <= set(stored), stored
    assert sink.reports()[-1].uuid == NEW_NODE_UUID


async def test_an_audit_with_nothing_changed_saves_and_publishes_nothing(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    hypervisor.run(UUID_B, sizes())
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=RecordSaver(backend))
    await tracker.ask("update_available_resource")
    saves, reports = len(backend.node_saves()), len(sink.reports())

    await tracker.ask("update_available_resource")
    await tracker.ask("update_available_resource")
    await tracker.ask("get_compute_node")

    assert (len(backend.node_saves()), len(sink.reports())) == (saves, reports)


async def test_drift_is_saved_and_published_as_only_the_changed_fields(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=RecordSaver(backend))
    await tracker.ask("update_available_resource")
    sink.clear()
    hypervisor.run(UUID_B, Resources(2, 2048, 10))

    await tracker.ask("update_available_resource")

    [report] = sink.reports()
    assert report.obj_what_changed() == USAGE_FIELDS
    assert report.uuid == NODE_UUID
    assert not report.obj_attr_is_set("host")
    assert (report.vcpus_used, report.memory_mb_used, report.free_ram_mb) == (
        2,
        2048,
        NODE_MEMORY_MB - 2048,
    )
    assert (report.local_gb_used, report.free_disk_gb, report.running_vms) == (
        10,
        NODE_LOCAL_GB - 10,
        1,
    )
    saves = backend.node_saves()
    assert len(saves) == 2
    assert set(saves[-1]) == USAGE_FIELDS
    assert backend.stored_node()["vcpus_used"] == 2
    assert backend.stored_node()["host"] == HOST  # the earlier whole save is kept


async def test_a_change_of_the_hypervisors_own_numbers_is_published(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink)
    await tracker.ask("update_available_resource")
    sink.clear()
    hypervisor.node.memory_mb = NODE_MEMORY_MB * 2  # memory added to the host

    await tracker.ask("update_available_resource")

    [report] = sink.reports()
    assert report.obj_what_changed() == {"memory_mb", "free_ram_mb"}
    assert (report.memory_mb, report.free_ram_mb) == (NODE_MEMORY_MB * 2, NODE_MEMORY_MB * 2)


async def test_claims_and_releases_are_saved_and_published_at_once(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=RecordSaver(backend))
    await tracker.ask("update_available_resource")
    sink.clear()

    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    assert sink.reports()[-1].vcpus_used == 2
    assert backend.stored_node()["vcpus_used"] == 2

    await tracker.ask("abort_instance_claim", {"instance": instance(UUID_A)})
    assert sink.reports()[-1].vcpus_used == 0
    assert backend.stored_node()["vcpus_used"] == 0
    assert all(topic == f"host.{HOST}.resources" for topic, _ in sink.published)


async def test_a_failed_save_is_made_whole_at_the_next_report(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    records = RecordSaver(backend, retry_interval=0.0)
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=records)
    await tracker.ask("update_available_resource")
    backend.down = True
    hypervisor.run(UUID_B, sizes())

    node = await tracker.ask("update_available_resource")

    assert node.vcpus_used == 2  # the tracker goes on without the backend
    assert records.failures == 1
    assert sink.reports()[-1].vcpus_used == 2  # and still publishes
    assert backend.stored_node()["vcpus_used"] == 0
    saves = len(backend.node_saves())

    backend.down = False
    await tracker.ask("update_available_resource")  # nothing changed, but a save is owed

    whole = backend.node_saves()[saves:]
    assert len(whole) == 1
    assert {"host", "vcpus", "memory_mb", "local_gb", "vcpus_used"} <= set(whole[0])
    assert backend.stored_node()["vcpus_used"] == 2
    await tracker.ask("update_available_resource")
    assert len(backend.node_saves()) == saves + 1


async def test_a_first_save_that_fails_is_tried_again_at_the_next_report(
    system: ActorSystem,
    hypervisor: FakeTrackerHypervisor,
    sink: RecordingSink,
    backend: RecordingBackend,
) -> None:
    backend.down = True
    records = RecordSaver(backend, retry_interval=0.0)
    tracker, _ = spawn_tracker(system, hypervisor, sink, records=records)
    await tracker.ask("update_available_resource")
    assert backend.node_saves() == []
    backend.down = False
    await tracker.ask("update_available_resource")
    assert backend.stored_node()["host"] == HOST


# --- the ticker -------------------------------------------------------------------------------


async def test_the_audit_runs_every_audit_interval_unasked(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink, settings(audit_interval=0.01))
    await tracker.ask("instance_claim", {"instance": instance(UUID_A)})
    hypervisor.run(UUID_B, sizes())
    async with asyncio.timeout(5.0):
        while actor.audits < 3:
            hypervisor.read.clear()
            await hypervisor.read.wait()
    assert UUID_B in actor.claims
    # Stopped with the actor system (the `system` fixture fails a task left behind).


async def test_get_compute_node_returns_a_copy(
    system: ActorSystem, hypervisor: FakeTrackerHypervisor, sink: RecordingSink
) -> None:
    tracker, actor = spawn_tracker(system, hypervisor, sink)
    node: ComputeNode = await tracker.ask("get_compute_node")
    node.vcpus_used = 99
    assert (await tracker.ask("get_compute_node")).vcpus_used == 0
    assert actor.node is not None and actor.node.vcpus_used == 0
