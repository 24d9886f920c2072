"""An instance actor rebuilt from the domain alone, and the power state kept true between
operations: recovery, interrupted operations, adoption, hypervisor events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actors import ActorRef, ActorSystem, instance_address
from actors.instance.errors import InstanceInvalidState
from actors.instance.recovery import RecoveryRecord, decode_recovery, encode_recovery
from schemas.objects.enums import PowerState
from schemas.objects.instance import Instance
from tests.actors.instance.fakes import (
    UUID,
    FakeDomain,
    FakeDriverError,
    FakeInstanceDriver,
    RecordingSink,
    image_meta,
    instance,
    make_actor,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def domain_with_record(driver: FakeInstanceDriver, state: PowerState, **values: object) -> None:
    """A domain as a previous agent left it: its record in <metadata>."""
    record = RecoveryRecord(instance(**values), image_meta())
    driver.domains[UUID] = FakeDomain("instance-00000001", state, encode_recovery(record))


async def test_a_new_actor_rebuilds_its_record_from_the_domain_alone(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _first = make_actor(system, driver, sink)
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    await ref.ask("pause", {"instance": instance()})
    await system.stop(instance_address(UUID))

    ref, second = make_actor(system, driver, sink)
    assert await ref.ask("sync_power_state") == "paused"
    assert second.record is not None
    assert (second.record.instance.vm_state, second.record.image_meta) == ("paused", image_meta())
    resumed = await ref.ask("unpause", {"instance": instance()})
    assert resumed.vm_state == "active"


async def test_an_operation_interrupted_by_a_restart_is_reconciled_with_the_guest(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.PAUSED, vm_state="active", task_state="pausing")
    ref, actor = make_actor(system, driver, sink)
    await ref.ask("sync_power_state")

    assert actor.record is not None
    assert (actor.record.instance.vm_state, actor.record.instance.task_state) == ("paused", None)
    assert sink.states() == [{"vm_state": "paused", "task_state": None, "power_state": "paused"}]
    stored = decode_recovery(UUID, driver.domains[UUID].recovery or b"")
    assert stored.instance.vm_state == "paused"


async def test_a_resume_interrupted_before_the_start_is_suspended_while_its_image_is_there(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.SHUTDOWN, vm_state="suspended", task_state="resuming")
    driver.domains[UUID].managed_save = True
    ref, actor = make_actor(system, driver, sink)
    await ref.ask("sync_power_state")
    assert actor.record is not None
    assert (actor.record.instance.vm_state, actor.record.instance.task_state) == (
        "suspended",
        None,
    )
    resumed = await ref.ask("resume", {"instance": instance()})
    assert (resumed.vm_state, resumed.power_state) == ("active", "running")


async def test_a_suspend_interrupted_with_no_image_left_the_guest_stopped_not_suspended(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.SHUTDOWN, vm_state="active", task_state="suspending")
    ref, actor = make_actor(system, driver, sink)
    await ref.ask("sync_power_state")
    assert actor.record is not None
    assert actor.record.instance.vm_state == "stopped"
    assert driver.calls().count("has_managed_save") == 1


async def test_a_guest_an_interrupted_snapshot_left_paused_is_resumed_at_recovery(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.PAUSED, vm_state="active", task_state="image_uploading")
    ref, actor = make_actor(system, driver, sink)
    assert await ref.ask("sync_power_state") == "running"
    assert actor.record is not None
    assert (actor.record.instance.vm_state, actor.record.instance.task_state) == ("active", None)
    assert driver.calls().count("unpause") == 1


async def test_a_guest_paused_before_its_snapshot_stays_paused_at_recovery(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.PAUSED, vm_state="paused", task_state="image_uploading")
    ref, actor = make_actor(system, driver, sink)
    assert await ref.ask("sync_power_state") == "paused"
    assert actor.record is not None
    assert actor.record.instance.vm_state == "paused"
    assert "unpause" not in driver.calls()


async def test_a_spawn_stopped_before_the_guest_started_is_finished_by_starting_it(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    # Every file made and the domain defined: only the start (and the record) was missing.
    domain_with_record(driver, PowerState.SHUTDOWN, vm_state="building", task_state="spawning")
    ref, actor = make_actor(system, driver, sink)
    assert await ref.ask("sync_power_state") == "running"
    assert actor.record is not None
    assert (actor.record.instance.vm_state, actor.record.instance.task_state) == ("active", None)
    assert driver.domains[UUID].state == PowerState.RUNNING


async def test_a_spawn_stopped_after_the_guest_started_is_recorded_active(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.RUNNING, vm_state="building", task_state="spawning")
    ref, actor = make_actor(system, driver, sink)
    await ref.ask("sync_power_state")
    assert actor.record is not None
    assert (actor.record.instance.vm_state, actor.record.instance.task_state) == ("active", None)


async def test_the_spawn_sent_again_after_an_interrupted_one_is_answered_with_its_instance(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.RUNNING, vm_state="building", task_state="spawning")
    ref, _actor = make_actor(system, driver, sink)
    again = await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    assert (again.vm_state, again.power_state) == ("active", "running")
    assert "spawn" not in driver.calls()  # nothing built twice
    other = instance()
    other.flavor.flavorid = "another"
    with pytest.raises(InstanceInvalidState):  # another spawn of it is still refused
        await ref.ask("spawn", {"instance": other, "image_meta": image_meta()})


async def test_a_spawn_of_an_instance_that_was_not_interrupted_is_refused(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.RUNNING, vm_state="active")
    ref, _actor = make_actor(system, driver, sink)
    with pytest.raises(InstanceInvalidState):
        await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})


async def test_an_overdue_reboot_is_finished_hard_by_poll_rebooting_instances(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    started = NOW - timedelta(seconds=600)
    domain_with_record(
        driver,
        PowerState.SHUTDOWN,
        vm_state="active",
        task_state="rebooting",
        power_state="running",
        updated_at=started,
    )
    clock_now = [started + timedelta(seconds=1)]
    ref, actor = make_actor(system, driver, sink, clock=lambda: clock_now[0])
    await ref.ask("sync_power_state")
    assert await ref.ask("poll_rebooting_instances", {"timeout": 60}) is False

    clock_now[0] = NOW
    assert await ref.ask("poll_rebooting_instances", {"timeout": 60}) is True
    assert "reboot_hard" in driver.calls()
    assert actor.record is not None
    assert (actor.record.instance.vm_state, actor.record.instance.task_state) == ("active", None)
    assert driver.domains[UUID].state == PowerState.RUNNING


async def test_unreadable_recovery_data_leaves_the_actor_tracking_power_only(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    driver.domains[UUID] = FakeDomain("instance-00000001", PowerState.RUNNING, b"\xc1not msgpack")
    ref, actor = make_actor(system, driver, sink)
    assert await ref.ask("sync_power_state") == "running"
    assert actor.record is None
    # The first operation adopts the guest from the request and stores a record.
    paused = await ref.ask("pause", {"instance": instance(vm_state="active")})
    assert paused.vm_state == "paused"
    assert decode_recovery(UUID, driver.domains[UUID].recovery or b"").instance.uuid == UUID


async def test_a_guest_that_shut_itself_down_is_recorded_stopped(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = make_actor(system, driver, sink)
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    sink.clear()
    driver.domains[UUID].state = PowerState.SHUTDOWN
    await ref.ask("domain_event", {"kind": "stopped", "detail": "shutdown"})

    assert sink.states() == [{"vm_state": "stopped", "power_state": "shutdown"}]
    assert [o.state for o in sink.on(f"instance.{UUID}.power_state")] == ["shutdown"]  # type: ignore[attr-defined]
    started = await ref.ask("power_on", {"instance": instance()})
    assert started.vm_state == "active"


async def test_a_shut_off_read_is_confirmed_before_it_is_recorded(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, actor = make_actor(system, driver, sink, down_confirm_delay=30.0)
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    sink.clear()
    driver.domains[UUID].state = PowerState.SHUTDOWN
    assert await ref.ask("sync_power_state") == "shutdown"
    assert sink.published == []  # held for the confirmation read
    assert actor.record is not None and actor.record.instance.vm_state == "active"


async def booted_host(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink, **record: object
) -> tuple[ActorRef, Instance]:
    """A new actor over a domain found down whose record says `record`, and what it answered
    to `resume_state_on_host_boot`."""
    domain_with_record(driver, PowerState.SHUTDOWN, **record)
    ref, _actor = make_actor(system, driver, sink)
    return ref, await ref.ask("resume_state_on_host_boot", {"instance": instance()})


async def test_resume_state_on_host_boot_starts_an_active_guest_that_is_down(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, back = await booted_host(system, driver, sink, vm_state="active", power_state="running")
    assert (back.vm_state, back.power_state) == ("active", "running")
    assert "reboot_hard" in driver.calls()

    driver.journal.clear()
    await ref.ask("resume_state_on_host_boot", {"instance": instance()})
    assert "reboot_hard" not in driver.calls()


async def test_a_stopped_instance_is_left_down_on_host_boot(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    _ref, back = await booted_host(system, driver, sink, vm_state="stopped", power_state="shutdown")
    assert back.vm_state == "stopped"
    assert driver.domains[UUID].state == PowerState.SHUTDOWN


async def test_a_recovery_load_failure_does_not_fail_the_power_sync(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    domain_with_record(driver, PowerState.RUNNING, vm_state="active")
    driver.fail_next("load_recovery")
    ref, actor = make_actor(system, driver, sink)
    assert await ref.ask("sync_power_state") == "running"
    # The next message loads it.
    assert await ref.ask("sync_power_state") == "running"
    assert actor.record is not None


async def test_a_record_that_cannot_be_stored_refuses_to_start_the_operation(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = make_actor(system, driver, sink)
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    driver.fail_next("store_recovery")
    with pytest.raises(FakeDriverError):
        await ref.ask("pause", {"instance": instance()})
    assert "pause" not in driver.calls()
    assert driver.domains[UUID].state == PowerState.RUNNING


async def test_an_unreadable_state_is_not_taken_for_a_missing_instance(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    driver.domains[UUID] = FakeDomain("instance-00000001", PowerState.RUNNING, None)
    driver.unreadable = True  # the power-state read fails; the driver itself still answers
    ref, actor = make_actor(system, driver, sink)
    paused = await ref.ask("pause", {"instance": instance(vm_state="active")})
    assert paused.vm_state == "paused"
    assert actor.record is not None
