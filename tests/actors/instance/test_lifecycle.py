"""The instance actor's lifecycle handlers over the in-memory driver: states, events in
order, refusals before any effect, failures that leave nothing half-done, recovery."""

from __future__ import annotations

import pytest

from actors import ActorRef, ActorSystem, HandlerFailed, instance_address
from actors.instance import InstanceSettings, snapshot_topic, state_topic
from actors.instance.errors import (
    InstanceInvalidState,
    InstanceNotFound,
    InvalidInstanceArgument,
    NotSupported,
)
from actors.instance.recovery import decode_recovery
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from tests.actors.instance.fakes import (
    IMAGE_ID,
    UUID,
    FakeDriverError,
    FakeInstanceDriver,
    RecordingSink,
    image_meta,
    instance,
    make_actor,
    spawned_actor,
    vif,
)

OTHER = "11111111-2222-4333-8444-555555555555"
RUNNING = {"vm_state": "active", "task_state": None, "power_state": "running"}


@pytest.fixture
async def ref(system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink) -> ActorRef:
    """The instance actor, its guest spawned, the spawn's events cleared."""
    ref, _actor = await spawned_actor(system, driver, sink)
    return ref


# --- spawn -----------------------------------------------------------------------------------


async def test_spawn_publishes_building_then_active_and_stores_the_record_in_the_domain(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, actor = make_actor(system, driver, sink)
    result = await ref.ask(
        "spawn",
        {"instance": instance(), "image_meta": image_meta(), "network_info": None},
    )

    assert isinstance(result, Instance)
    assert (result.vm_state, result.task_state, result.power_state) == ("active", None, "running")
    assert result.launched_at is not None
    first, second = sink.states()
    assert (first["vm_state"], first["task_state"], first["power_state"]) == (
        "building",
        "spawning",
        "pending",
    )
    assert first["name"] == "instance-00000001"  # the first event is the whole record
    assert {k: second[k] for k in RUNNING} == RUNNING
    assert set(second) == {*RUNNING, "launched_at"}
    stored = decode_recovery(UUID, driver.domains[UUID].recovery or b"")
    assert (stored.instance.vm_state, stored.instance.power_state) == ("active", "running")
    assert stored.image_meta == image_meta()
    assert actor.record is not None


async def test_spawn_of_an_instance_that_exists_is_refused_before_the_driver_is_called(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    driver.journal.clear()
    with pytest.raises(InstanceInvalidState) as caught:
        await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    assert str(caught.value) == f"cannot spawn instance {UUID} while vm_state is 'active'"
    assert "spawn" not in driver.calls()
    assert sink.published == []


async def test_a_failed_spawn_publishes_error_and_leaves_nothing_behind(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, actor = make_actor(system, driver, sink)
    driver.fail_next("spawn")
    with pytest.raises(FakeDriverError):
        await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})

    assert [(s["vm_state"], s["task_state"]) for s in sink.states()] == [
        ("building", "spawning"),
        ("error", None),
    ]
    assert actor.record is None
    assert UUID not in driver.domains
    # Nothing is left that would stop a second attempt.
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    assert driver.domains[UUID].state == "running"


async def test_a_spawn_failing_with_a_foreign_error_is_cleaned_up_the_same_way(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, actor = make_actor(system, driver, sink)
    # Not a libvirt error: the agent's driver translates those (agent.virt.libvirt_errors).
    driver.fail_next("spawn", RuntimeError("a bug in the driver"))
    with pytest.raises(HandlerFailed) as caught:
        await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})
    assert caught.value.exc_message == "a bug in the driver"
    assert sink.states()[-1] == {"vm_state": "error", "task_state": None}
    assert actor.record is None


@pytest.mark.parametrize(
    ("values", "argument"),
    [({"name": "</name><evil/>"}, "instance.name"), ({"name": "a/b"}, "instance.name")],
)
async def test_spawn_with_a_hostile_name_is_refused_with_no_effect(
    system: ActorSystem,
    driver: FakeInstanceDriver,
    sink: RecordingSink,
    values: dict[str, str],
    argument: str,
) -> None:
    ref, _actor = make_actor(system, driver, sink)
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask("spawn", {"instance": instance(**values), "image_meta": image_meta()})
    assert caught.value.argument == argument
    assert driver.domains == {}
    assert sink.published == []


async def test_spawn_with_a_hostile_port_name_is_refused_with_no_effect(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    from schemas.objects.network import NetworkInfo

    ref, _actor = make_actor(system, driver, sink)
    ports = NetworkInfo(objects=[vif(devname="tap0</source>")])
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask(
            "spawn",
            {"instance": instance(), "image_meta": image_meta(), "network_info": ports},
        )
    assert caught.value.argument == "vif.devname"
    assert driver.domains == {}


async def test_a_request_naming_another_instance_is_refused(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask("pause", {"instance": instance(OTHER)})
    assert str(caught.value) == (
        f"invalid instance for pause of instance {UUID}: it names instance {OTHER}"
    )
    assert driver.domains[UUID].state == "running"


async def test_operations_on_an_unknown_instance_are_instance_not_found(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, _actor = make_actor(system, driver, sink)
    for method in ("pause", "reboot", "power_off", "suspend", "snapshot"):
        args: dict[str, object] = {"instance": instance()}
        if method == "snapshot":
            args["image_id"] = IMAGE_ID
        with pytest.raises(InstanceNotFound) as caught:
            await ref.ask(method, args)
        assert str(caught.value) == f"instance {UUID} could not be found"
    assert [m for m, _ in driver.journal if m != "load_recovery"] == []


async def test_without_a_driver_operations_are_not_supported(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    from actors.instance import InstanceActor

    ref = system.spawn(instance_address(UUID), InstanceActor(UUID, driver, sink))
    with pytest.raises(NotSupported) as caught:
        await ref.ask("pause", {"instance": instance()})
    assert str(caught.value) == (
        "pause is not supported: this agent has no instance driver configured"
    )


# --- power -----------------------------------------------------------------------------------


async def test_pause_and_unpause_publish_each_step_and_unpause_of_a_running_guest_is_refused(
    ref: ActorRef, sink: RecordingSink
) -> None:
    with pytest.raises(InstanceInvalidState) as caught:
        await ref.ask("unpause", {"instance": instance()})
    assert (caught.value.attr, caught.value.state) == ("vm_state", "active")

    paused = await ref.ask("pause", {"instance": instance()})
    assert (paused.vm_state, paused.power_state) == ("paused", "paused")
    await ref.ask("unpause", {"instance": instance()})

    assert sink.states() == [
        {"task_state": "pausing"},
        {"vm_state": "paused", "task_state": None, "power_state": "paused"},
        {"task_state": "unpausing"},
        {"vm_state": "active", "task_state": None, "power_state": "running"},
    ]
    assert [o.state for o in sink.on(f"instance.{UUID}.power_state")] == ["paused", "running"]


async def test_suspend_and_resume_go_through_the_managed_save(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    suspended = await ref.ask("suspend", {"instance": instance()})
    assert (suspended.vm_state, suspended.power_state) == ("suspended", "shutdown")
    assert driver.domains[UUID].managed_save
    # A resync reads "shut down" for the suspended guest: the vm_state stays suspended.
    await ref.ask("sync_power_state")
    with pytest.raises(InstanceInvalidState):
        await ref.ask("power_on", {"instance": instance()})
    resumed = await ref.ask("resume", {"instance": instance()})
    assert (resumed.vm_state, resumed.power_state) == ("active", "running")
    assert [s.get("vm_state") for s in sink.states()] == [None, "suspended", None, "active"]


async def test_power_off_is_clean_when_the_guest_honours_acpi(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    stopped = await ref.ask("power_off", {"instance": instance(), "timeout": 5})
    assert (stopped.vm_state, stopped.power_state) == ("stopped", "shutdown")
    assert "power_off_hard" not in driver.calls()
    assert driver.domains[UUID].console.endswith("shutdown requested\n")


async def test_power_off_falls_back_to_hard_and_timeout_zero_is_hard_at_once(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    driver.clean_shutdown_works = False
    await ref.ask("power_off", {"instance": instance(), "timeout": 5, "retry_interval": 1})
    offs = [m for m in driver.calls() if m in ("shutdown", "power_off_hard")]
    assert offs == ["shutdown", "power_off_hard"]

    await ref.ask("power_on", {"instance": instance()})
    driver.journal.clear()
    await ref.ask("power_off", {"instance": instance(), "timeout": 0})
    assert "shutdown" not in driver.calls()
    assert "power_off_hard" in driver.calls()


async def test_power_off_refuses_a_negative_timeout(ref: ActorRef) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask("power_off", {"instance": instance(), "timeout": -1})
    assert caught.value.argument == "timeout"


async def test_a_soft_reboot_the_guest_ignores_falls_back_to_hard(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    settings = InstanceSettings(reboot_timeout=0.5)
    ref, _actor = await spawned_actor(system, driver, sink, settings=settings)
    driver.soft_reboot_works = False
    rebooted = await ref.ask("reboot", {"instance": instance(), "reboot_type": "SOFT"})

    assert rebooted.vm_state == "active"
    assert [m for m in driver.calls() if m.startswith("reboot")] == ["reboot_soft", "reboot_hard"]
    assert [s.get("task_state", "-") for s in sink.states()] == [
        "rebooting",
        "rebooting_hard",
        None,
    ]


async def test_reboot_types_other_than_soft_and_hard_are_refused(ref: ActorRef) -> None:
    with pytest.raises(InvalidInstanceArgument) as caught:
        await ref.ask("reboot", {"instance": instance(), "reboot_type": "soft; halt"})
    assert caught.value.reason == "'soft; halt' is not SOFT or HARD"


async def test_a_hard_reboot_starts_a_stopped_guest(ref: ActorRef) -> None:
    await ref.ask("power_off", {"instance": instance(), "timeout": 0})
    with pytest.raises(InstanceInvalidState):
        await ref.ask("reboot", {"instance": instance(), "reboot_type": "SOFT"})
    rebooted = await ref.ask("reboot", {"instance": instance(), "reboot_type": "HARD"})
    assert (rebooted.vm_state, rebooted.power_state) == ("active", "running")


async def test_a_failed_operation_clears_its_task_and_keeps_the_vm_state(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    driver.fail_next("pause")
    with pytest.raises(FakeDriverError):
        await ref.ask("pause", {"instance": instance()})
    assert sink.states() == [{"task_state": "pausing"}, {"task_state": None}]
    paused = await ref.ask("pause", {"instance": instance()})
    assert paused.vm_state == "paused"


async def test_soft_delete_stops_the_guest_and_restore_starts_it(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    deleted = await ref.ask("soft_delete", {"instance": instance()})
    assert (deleted.vm_state, deleted.power_state) == ("soft-delete", "shutdown")
    assert UUID in driver.disks
    restored = await ref.ask("restore", {"instance": instance()})
    assert (restored.vm_state, restored.power_state) == ("active", "running")


async def test_rescue_and_unrescue_keep_the_record_in_the_domain(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    rescued = await ref.ask("rescue", {"instance": instance(), "image_meta": image_meta()})
    assert rescued.vm_state == "rescued"
    assert (
        decode_recovery(UUID, driver.domains[UUID].recovery or b"").instance.vm_state == "rescued"
    )
    back = await ref.ask("unrescue", {"instance": instance()})
    assert back.vm_state == "active"
    assert not driver.domains[UUID].rescued


# --- destroy and cleanup ---------------------------------------------------------------------


async def test_destroy_is_idempotent_and_a_missing_domain_is_success(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    gone = await ref.ask("destroy", {"instance": instance(), "destroy_disks": True})
    assert (gone.vm_state, gone.task_state, gone.power_state) == ("deleted", None, "pending")
    assert UUID not in driver.domains and UUID not in driver.disks
    assert [s.get("vm_state") for s in sink.states()] == [None, "deleted"]

    again = await ref.ask("destroy", {"instance": instance()})
    assert again.vm_state == "deleted"
    # The uuid can be spawned again.
    await ref.ask("spawn", {"instance": instance(), "image_meta": image_meta()})


async def test_destroy_keeps_the_disks_unless_asked(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    await ref.ask("destroy", {"instance": instance(), "destroy_disks": False})
    assert UUID not in driver.domains
    assert UUID in driver.disks


async def test_cleanup_is_refused_while_the_guest_runs_and_removes_a_stopped_one(
    ref: ActorRef, driver: FakeInstanceDriver
) -> None:
    with pytest.raises(InstanceInvalidState) as caught:
        await ref.ask("cleanup", {"instance": instance()})
    assert (caught.value.attr, caught.value.state) == ("power_state", "running")
    await ref.ask("power_off", {"instance": instance(), "timeout": 0})
    await ref.ask("cleanup", {"instance": instance(), "destroy_disks": True})
    assert UUID not in driver.domains and UUID not in driver.disks


# --- snapshot --------------------------------------------------------------------------------


async def test_snapshot_reports_progress_and_returns_the_image_path(
    ref: ActorRef, sink: RecordingSink
) -> None:
    path = await ref.ask("snapshot", {"instance": instance(), "image_id": IMAGE_ID})

    assert path == f"/images/{IMAGE_ID}.qcow2"
    images = [o for o in sink.on(snapshot_topic(UUID)) if isinstance(o, ImageMeta)]
    assert [i.status for i in images] == ["queued", "saving", "active"]
    assert {i.id for i in images} == {IMAGE_ID}
    assert images[-1].disk_format == "qcow2"
    assert [s.get("task_state") for s in sink.states()] == [
        "image_snapshot",
        "image_uploading",
        None,
    ]


async def test_a_failed_snapshot_is_reported_killed_and_the_task_cleared(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    driver.fail_next("snapshot")
    with pytest.raises(FakeDriverError):
        await ref.ask("snapshot", {"instance": instance(), "image_id": IMAGE_ID})
    statuses = [o.status for o in sink.on(snapshot_topic(UUID))]
    assert statuses == ["queued", "killed"]
    assert sink.states()[-1] == {"task_state": None}


async def test_a_snapshot_image_id_that_is_not_a_uuid_is_refused(
    ref: ActorRef, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    with pytest.raises(InvalidInstanceArgument):
        await ref.ask("snapshot", {"instance": instance(), "image_id": "../x"})
    assert "snapshot" not in driver.calls()
    assert sink.published == []


async def test_state_events_never_carry_user_data_or_key_data(
    system: ActorSystem, driver: FakeInstanceDriver, sink: RecordingSink
) -> None:
    ref, actor = make_actor(system, driver, sink)
    secret = instance(
        user_data="I2Nsb3VkLWNvbmZpZwpwYXNzd29yZDogaHVudGVyMg==", key_data="ssh-ed25519 AAAA"
    )
    await ref.ask("spawn", {"instance": secret, "image_meta": image_meta()})
    events = sink.on(state_topic(UUID))
    assert events
    for event in events:
        assert not event.obj_attr_is_set("user_data")
        assert not event.obj_attr_is_set("key_data")
    assert actor.record is not None
    assert actor.record.instance.user_data == secret.user_data  # kept, just not published
