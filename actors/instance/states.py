"""Which operation an instance allows in which state, and where each one leaves it.

Pure policy over (vm_state, task_state, power_state), nova's compute-manager rules: an
operation names the vm_states it may start from (and, for those that need a running guest,
the power states), the task_state shown while it runs, and the vm_state it ends in. Two
more rules reconcile the record with the hypervisor: what a power-state change observed
outside any operation does to the vm_state, and what an operation interrupted by an agent
restart leaves behind. Nothing here touches a clock, a hypervisor or an actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from actors.instance.errors import InstanceInvalidState
from schemas.objects.enums import PowerState, TaskState, VMState

ANY_VM_STATE: frozenset[str] = frozenset(VMState)


@dataclass(slots=True, frozen=True)
class Operation:
    """`vm_states` it may start from; `power_states` it needs (None: any); `task_state` while
    it runs (None: it shows none); `done` the vm_state after success (None: unchanged)."""

    action: str
    vm_states: frozenset[str]
    task_state: str | None = None
    done: str | None = None
    power_states: frozenset[str] | None = None
    # May start while another task_state is recorded (left by an interrupted operation).
    overrides_task: bool = False


def _op(
    action: str,
    vm_states: set[VMState] | frozenset[str],
    task_state: TaskState | None = None,
    done: VMState | None = None,
    power_states: set[PowerState] | None = None,
    *,
    overrides_task: bool = False,
) -> Operation:
    return Operation(
        action,
        frozenset(vm_states),
        task_state,
        done,
        None if power_states is None else frozenset(power_states),
        overrides_task,
    )


_V, _T, _P = VMState, TaskState, PowerState
_RUNNING = {_P.RUNNING}
_DEVICES = {_V.ACTIVE, _V.PAUSED, _V.STOPPED}

OPERATIONS: dict[str, Operation] = {
    op.action: op
    for op in (
        # Spawn starts from no record at all; a record is spawned over only once deleted.
        _op("spawn", {_V.DELETED}, _T.SPAWNING, _V.ACTIVE),
        _op("destroy", ANY_VM_STATE, _T.DELETING, _V.DELETED, overrides_task=True),
        _op(
            "cleanup",
            ANY_VM_STATE,
            power_states={_P.SHUTDOWN, _P.CRASHED, _P.PENDING, _P.SUSPENDED},
            overrides_task=True,
        ),
        _op("reboot_soft", {_V.ACTIVE}, _T.REBOOTING, _V.ACTIVE, _RUNNING),
        _op(
            "reboot_hard",
            {_V.ACTIVE, _V.STOPPED, _V.PAUSED, _V.SUSPENDED, _V.ERROR},
            _T.REBOOTING_HARD,
            _V.ACTIVE,
            overrides_task=True,
        ),
        _op("power_off", {_V.ACTIVE, _V.PAUSED, _V.RESCUED, _V.ERROR}, _T.POWERING_OFF, _V.STOPPED),
        _op("power_on", {_V.STOPPED}, _T.POWERING_ON, _V.ACTIVE),
        _op("pause", {_V.ACTIVE}, _T.PAUSING, _V.PAUSED, _RUNNING),
        _op("unpause", {_V.PAUSED}, _T.UNPAUSING, _V.ACTIVE),
        _op("suspend", {_V.ACTIVE}, _T.SUSPENDING, _V.SUSPENDED, {_P.RUNNING, _P.PAUSED}),
        _op("resume", {_V.SUSPENDED}, _T.RESUMING, _V.ACTIVE),
        _op(
            "soft_delete",
            {_V.ACTIVE, _V.STOPPED, _V.PAUSED, _V.SUSPENDED, _V.ERROR},
            _T.SOFT_DELETING,
            _V.SOFT_DELETED,
        ),
        _op("restore", {_V.SOFT_DELETED}, _T.RESTORING, _V.ACTIVE),
        _op("rescue", {_V.ACTIVE, _V.STOPPED, _V.ERROR}, _T.RESCUING, _V.RESCUED),
        _op("unrescue", {_V.RESCUED}, _T.UNRESCUING, _V.ACTIVE),
        _op("resume_state_on_host_boot", ANY_VM_STATE - {_V.DELETED, _V.BUILDING}),
        _op("snapshot", {_V.ACTIVE, _V.STOPPED, _V.PAUSED, _V.SUSPENDED}, _T.IMAGE_SNAPSHOT),
        _op("set_admin_password", {_V.ACTIVE}, _T.UPDATING_PASSWORD, None, _RUNNING),
        _op("inject_file", {_V.ACTIVE}, power_states=_RUNNING),
        _op("attach_volume", _DEVICES),
        _op("detach_volume", _DEVICES),
        _op("swap_volume", {_V.ACTIVE, _V.PAUSED}, power_states={_P.RUNNING, _P.PAUSED}),
        _op("attach_interface", _DEVICES),
        _op("detach_interface", _DEVICES),
        _op("change_instance_metadata", ANY_VM_STATE - {_V.DELETED}),
        _op("inject_network_info", ANY_VM_STATE - {_V.DELETED}),
        _op(
            "live_migration",
            {_V.ACTIVE, _V.PAUSED},
            _T.MIGRATING,
            None,
            {_P.RUNNING, _P.PAUSED},
        ),
        # A resize or cold migration (docs/resize.md): the source powers the guest off and
        # sends its disks; the vm_state changes only on the destination (resized), and the
        # task then recorded at the source (resize_migrated) is what RESIZE_STEPS ask for.
        _op("migrate_disk_and_power_off", {_V.ACTIVE, _V.STOPPED}, _T.RESIZE_MIGRATING),
    )
}

# The later steps of a resize on its source: each needs the task the disks' departure left
# (the guest waits, powered off, with its old flavor and disks, until confirmed or reverted).
RESIZE_STEPS: dict[str, str] = {
    "confirm_migration": _T.RESIZE_MIGRATED,
    "finish_revert_migration": _T.RESIZE_MIGRATED,
}


def check_resize_step(action: str, uuid: str, task_state: str | None) -> None:
    """`InstanceInvalidState` unless the source's record shows the task `action` follows."""
    if task_state != RESIZE_STEPS[action]:
        raise invalid_state(action, uuid, "task_state", task_state)


REBOOT_TASKS: frozenset[str] = frozenset(
    {
        _T.REBOOTING,
        _T.REBOOT_PENDING,
        _T.REBOOT_STARTED,
        _T.REBOOTING_HARD,
        _T.REBOOT_PENDING_HARD,
        _T.REBOOT_STARTED_HARD,
    }
)


# The tasks of a managed save or of the start that restores it: after a restart, whether
# libvirt holds the image decides between suspended and stopped.
SAVE_TASKS: frozenset[str] = frozenset({_T.SUSPENDING, _T.RESUMING})

# A snapshot's tasks: its copy pauses a running guest and resumes it after, unless the
# agent stops in between (`snapshot_paused`).
SNAPSHOT_TASKS: frozenset[str] = frozenset({_T.IMAGE_SNAPSHOT, _T.IMAGE_UPLOADING})


def snapshot_paused(vm_state: str, task_state: str | None, power_state: str) -> bool:
    """Whether a record read back after a restart is of a guest a snapshot paused for its
    copy and did not resume: the snapshot's task recorded, the instance active (a guest
    paused otherwise is recorded paused), the guest paused now."""
    return (
        task_state in SNAPSHOT_TASKS
        and vm_state == VMState.ACTIVE
        and power_state == PowerState.PAUSED
    )


def check_allowed(
    action: str, uuid: str, vm_state: str, task_state: str | None, power_state: str
) -> Operation:
    """The operation `action`, if the instance may start it now; raises
    `InstanceInvalidState` naming the first of task_state, vm_state, power_state that forbids it.
    """
    op = OPERATIONS[action]
    if task_state is not None and not op.overrides_task:
        raise invalid_state(action, uuid, "task_state", task_state)
    if vm_state not in op.vm_states:
        raise invalid_state(action, uuid, "vm_state", vm_state)
    if op.power_states is not None and power_state not in op.power_states:
        raise invalid_state(action, uuid, "power_state", power_state)
    return op


def invalid_state(action: str, uuid: str, attr: str, state: str | None) -> InstanceInvalidState:
    """The refusal, with the state as a plain string (it travels on the wire)."""
    shown = None if state is None else str(state)
    return InstanceInvalidState(action=action, uuid=uuid, attr=attr, state=shown)


def vm_state_for_power(
    vm_state: str, task_state: str | None, previous: str, power_state: str
) -> str | None:
    """The vm_state a power-state change seen outside any operation implies, or None to
    keep it.

    A guest that shut itself down (or crashed) is stopped; one started, resumed or paused
    from outside the agent (virsh, a guest-initiated suspend) is recorded as it is. Only a
    change from the `previous` recorded power state counts: after an agent restart the
    recorded vm_state is the intent (`resume_state_on_host_boot` acts on it), not a fact to
    overwrite. A state that cannot be read, or a missing domain (`pending`), changes nothing,
    and neither does anything while a task is recorded. A suspended guest reads as shut down
    (its memory is in libvirt's managed save), and a soft-deleted one is shut down by design.
    """
    if previous == power_state or task_state is not None or power_state == PowerState.PENDING:
        return None
    if power_state in (PowerState.SHUTDOWN, PowerState.CRASHED):
        if vm_state in (VMState.ACTIVE, VMState.PAUSED, VMState.RESCUED):
            return VMState.STOPPED
        return None
    if power_state == PowerState.RUNNING:
        if vm_state in (VMState.STOPPED, VMState.PAUSED, VMState.SUSPENDED):
            return VMState.ACTIVE
        return None
    if power_state == PowerState.PAUSED and vm_state == VMState.ACTIVE:
        return VMState.PAUSED
    return None


@dataclass(slots=True, frozen=True)
class Reconciled:
    """The vm_state and task_state a recovered record continues with."""

    vm_state: str
    task_state: str | None


def reconcile_recovered(
    vm_state: str, task_state: str | None, power_state: str, managed_save: bool = False
) -> Reconciled:
    """What a record read back after an agent restart continues with.

    A recorded task_state means the agent stopped in the middle of that operation. A reboot
    keeps its task, so `poll_rebooting_instances` finishes it, and so does a resize's source
    waiting for its confirm or revert (resize_migrated); an interrupted spawn whose guest
    runs finished all but its record (active); any other interrupted spawn, or a delete,
    is an error (the caller retries the delete, which is idempotent); any other task is
    cleared and the vm_state follows the power state the hypervisor reports now. A suspend
    or resume whose guest is shut off with its `managed_save` image (libvirt holds one) is
    suspended: a resume sent again starts from it.
    """
    if task_state is None or task_state in REBOOT_TASKS:
        return Reconciled(vm_state, task_state)
    if task_state == TaskState.RESIZE_MIGRATED:
        # A resize's source waiting for its confirm or revert: the guest is meant to be off.
        return Reconciled(vm_state, task_state)
    if task_state == TaskState.SPAWNING and power_state == PowerState.RUNNING:
        return Reconciled(VMState.ACTIVE, None)
    if task_state in (TaskState.SPAWNING, TaskState.DELETING) or vm_state == VMState.BUILDING:
        return Reconciled(VMState.ERROR, None)
    observed = {
        PowerState.RUNNING: VMState.ACTIVE,
        PowerState.PAUSED: VMState.PAUSED,
        PowerState.SHUTDOWN: VMState.STOPPED,
        PowerState.CRASHED: VMState.ERROR,
    }.get(PowerState(power_state))
    if task_state in SAVE_TASKS and power_state == PowerState.SHUTDOWN and managed_save:
        observed = VMState.SUSPENDED
    return Reconciled(observed or vm_state, None)


def reboot_overdue(
    task_state: str | None, updated_at: datetime | None, now: datetime, timeout: float
) -> bool:
    """Whether a recorded reboot has been in progress for more than `timeout` seconds."""
    if task_state not in REBOOT_TASKS:
        return False
    if updated_at is None:
        return True
    return (now - updated_at).total_seconds() > timeout


def should_resume_on_host_boot(vm_state: str, power_state: str) -> bool:
    """After the host booted: an active instance whose guest does not run."""
    return vm_state == VMState.ACTIVE and power_state != PowerState.RUNNING
