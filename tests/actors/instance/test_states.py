"""The instance state machine as a pure policy: which operation may start in which state,
where it ends, what a power state seen from outside implies, and what an interrupted
operation leaves after an agent restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actors.instance.errors import InstanceInvalidState
from actors.instance.states import (
    OPERATIONS,
    Reconciled,
    check_allowed,
    reboot_overdue,
    reconcile_recovered,
    should_resume_on_host_boot,
    vm_state_for_power,
)
from schemas.objects.enums import PowerState, TaskState, VMState

U = "6f2b0c52-5c1e-4c55-9a40-2d7c1f0e0a01"


def test_unpause_of_a_running_guest_is_refused_naming_the_vm_state() -> None:
    with pytest.raises(InstanceInvalidState) as caught:
        check_allowed("unpause", U, VMState.ACTIVE, None, PowerState.RUNNING)
    assert caught.value.fields == {
        "action": "unpause",
        "uuid": U,
        "attr": "vm_state",
        "state": "active",
    }
    assert str(caught.value) == f"cannot unpause instance {U} while vm_state is 'active'"


def test_pause_needs_a_running_guest_even_when_the_record_says_active() -> None:
    with pytest.raises(InstanceInvalidState) as caught:
        check_allowed("pause", U, VMState.ACTIVE, None, PowerState.SHUTDOWN)
    assert (caught.value.attr, caught.value.state) == ("power_state", "shutdown")


def test_a_recorded_task_blocks_every_operation_but_destroy_and_hard_reboot() -> None:
    for action in ("pause", "power_off", "attach_volume", "snapshot", "reboot_soft"):
        with pytest.raises(InstanceInvalidState) as caught:
            check_allowed(action, U, VMState.ACTIVE, TaskState.REBOOTING, PowerState.RUNNING)
        assert (caught.value.attr, caught.value.state) == ("task_state", "rebooting")
    for action in ("destroy", "reboot_hard"):
        check_allowed(action, U, VMState.ACTIVE, TaskState.REBOOTING, PowerState.RUNNING)


@pytest.mark.parametrize(
    ("action", "vm_state", "power_state", "task", "done"),
    [
        ("pause", VMState.ACTIVE, PowerState.RUNNING, TaskState.PAUSING, VMState.PAUSED),
        ("unpause", VMState.PAUSED, PowerState.PAUSED, TaskState.UNPAUSING, VMState.ACTIVE),
        ("suspend", VMState.ACTIVE, PowerState.RUNNING, TaskState.SUSPENDING, VMState.SUSPENDED),
        ("resume", VMState.SUSPENDED, PowerState.SHUTDOWN, TaskState.RESUMING, VMState.ACTIVE),
        ("power_off", VMState.ACTIVE, PowerState.RUNNING, TaskState.POWERING_OFF, VMState.STOPPED),
        ("power_on", VMState.STOPPED, PowerState.SHUTDOWN, TaskState.POWERING_ON, VMState.ACTIVE),
        ("reboot_soft", VMState.ACTIVE, PowerState.RUNNING, TaskState.REBOOTING, VMState.ACTIVE),
        (
            "reboot_hard",
            VMState.STOPPED,
            PowerState.SHUTDOWN,
            TaskState.REBOOTING_HARD,
            VMState.ACTIVE,
        ),
        ("rescue", VMState.ACTIVE, PowerState.RUNNING, TaskState.RESCUING, VMState.RESCUED),
        ("unrescue", VMState.RESCUED, PowerState.RUNNING, TaskState.UNRESCUING, VMState.ACTIVE),
        (
            "soft_delete",
            VMState.ACTIVE,
            PowerState.RUNNING,
            TaskState.SOFT_DELETING,
            VMState.SOFT_DELETED,
        ),
        ("restore", VMState.SOFT_DELETED, PowerState.SHUTDOWN, TaskState.RESTORING, VMState.ACTIVE),
        ("snapshot", VMState.PAUSED, PowerState.PAUSED, TaskState.IMAGE_SNAPSHOT, None),
        ("destroy", VMState.ERROR, PowerState.CRASHED, TaskState.DELETING, VMState.DELETED),
    ],
)
def test_each_operation_shows_its_task_and_ends_in_its_vm_state(
    action: str, vm_state: str, power_state: str, task: str, done: str | None
) -> None:
    op = check_allowed(action, U, vm_state, None, power_state)
    assert (op.task_state, op.done) == (task, done)


def test_cleanup_is_refused_while_the_guest_runs_or_is_paused() -> None:
    for power in (PowerState.RUNNING, PowerState.PAUSED):
        with pytest.raises(InstanceInvalidState) as caught:
            check_allowed("cleanup", U, VMState.ACTIVE, None, power)
        assert caught.value.attr == "power_state"
    check_allowed("cleanup", U, VMState.ACTIVE, None, PowerState.SHUTDOWN)


def test_every_operation_allows_at_least_one_vm_state_and_names_itself() -> None:
    for action, op in OPERATIONS.items():
        assert op.action == action
        assert op.vm_states, action


@pytest.mark.parametrize(
    ("vm_state", "power_state", "expected"),
    [
        (VMState.ACTIVE, PowerState.SHUTDOWN, VMState.STOPPED),
        (VMState.ACTIVE, PowerState.CRASHED, VMState.STOPPED),
        (VMState.PAUSED, PowerState.SHUTDOWN, VMState.STOPPED),
        (VMState.STOPPED, PowerState.RUNNING, VMState.ACTIVE),
        (VMState.PAUSED, PowerState.RUNNING, VMState.ACTIVE),
        (VMState.ACTIVE, PowerState.PAUSED, VMState.PAUSED),
        (VMState.ACTIVE, PowerState.RUNNING, None),
        (VMState.SUSPENDED, PowerState.SHUTDOWN, None),
        (VMState.SOFT_DELETED, PowerState.SHUTDOWN, None),
        (VMState.ACTIVE, PowerState.PENDING, None),
    ],
)
def test_a_power_state_change_seen_outside_any_operation_moves_the_vm_state(
    vm_state: str, power_state: str, expected: str | None
) -> None:
    for previous in PowerState:
        if previous != power_state:
            assert vm_state_for_power(vm_state, None, previous, power_state) == expected


def test_a_recorded_task_keeps_the_vm_state_whatever_the_power_state() -> None:
    assert (
        vm_state_for_power(
            VMState.ACTIVE, TaskState.REBOOTING, PowerState.RUNNING, PowerState.SHUTDOWN
        )
        is None
    )


def test_an_unchanged_power_state_keeps_the_recorded_intent() -> None:
    # An active instance found down after a restart stays active: resume_state_on_host_boot
    # may start it again.
    shut = PowerState.SHUTDOWN
    assert vm_state_for_power(VMState.ACTIVE, None, shut, shut) is None


@pytest.mark.parametrize(
    ("vm_state", "task", "power", "expected"),
    [
        (VMState.ACTIVE, None, PowerState.RUNNING, Reconciled("active", None)),
        (
            VMState.ACTIVE,
            TaskState.REBOOTING,
            PowerState.SHUTDOWN,
            Reconciled("active", "rebooting"),
        ),
        # A spawn stopped after the guest started: only its record was missing.
        (VMState.BUILDING, TaskState.SPAWNING, PowerState.RUNNING, Reconciled("active", None)),
        # Stopped before it started the guest (the actor starts a defined one first).
        (VMState.BUILDING, TaskState.SPAWNING, PowerState.SHUTDOWN, Reconciled("error", None)),
        (VMState.BUILDING, TaskState.SPAWNING, PowerState.PENDING, Reconciled("error", None)),
        (VMState.ACTIVE, TaskState.DELETING, PowerState.SHUTDOWN, Reconciled("error", None)),
        (VMState.ACTIVE, TaskState.PAUSING, PowerState.PAUSED, Reconciled("paused", None)),
        (VMState.ACTIVE, TaskState.POWERING_OFF, PowerState.SHUTDOWN, Reconciled("stopped", None)),
        (VMState.ACTIVE, TaskState.IMAGE_SNAPSHOT, PowerState.PENDING, Reconciled("active", None)),
    ],
)
def test_an_interrupted_operation_is_reconciled_with_the_power_state_after_a_restart(
    vm_state: str, task: str | None, power: str, expected: Reconciled
) -> None:
    assert reconcile_recovered(vm_state, task, power) == expected


def test_an_interrupted_suspend_or_resume_is_suspended_only_with_its_managed_save_image() -> None:
    for task in (TaskState.SUSPENDING, TaskState.RESUMING):
        vm_state = VMState.ACTIVE if task == TaskState.SUSPENDING else VMState.SUSPENDED
        saved = reconcile_recovered(vm_state, task, PowerState.SHUTDOWN, managed_save=True)
        assert saved == Reconciled("suspended", None)
        # No image: nothing to resume from, the guest is off.
        assert reconcile_recovered(vm_state, task, PowerState.SHUTDOWN) == Reconciled(
            "stopped", None
        )
        running = reconcile_recovered(vm_state, task, PowerState.RUNNING, managed_save=True)
        assert running == Reconciled("active", None)


def test_a_reboot_is_overdue_only_past_its_timeout() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    started = now - timedelta(seconds=90)
    assert reboot_overdue(TaskState.REBOOTING, started, now, 60)
    assert not reboot_overdue(TaskState.REBOOTING, started, now, 120)
    assert not reboot_overdue(TaskState.PAUSING, started, now, 60)
    assert not reboot_overdue(None, started, now, 60)
    assert reboot_overdue(TaskState.REBOOT_STARTED_HARD, None, now, 60)


def test_only_an_active_instance_whose_guest_does_not_run_resumes_on_host_boot() -> None:
    assert should_resume_on_host_boot(VMState.ACTIVE, PowerState.SHUTDOWN)
    assert not should_resume_on_host_boot(VMState.ACTIVE, PowerState.RUNNING)
    assert not should_resume_on_host_boot(VMState.STOPPED, PowerState.SHUTDOWN)
