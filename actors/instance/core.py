"""The instance actor's state and plumbing, shared by its handler groups.

`InstanceCore` owns one instance's record (`RecoveryRecord`: the versioned `Instance` with
its vm_state, task_state and power_state, and the image it was built from), keeps it in the
domain's <metadata> through the `InstanceDriver`, and publishes every change. The handler
groups (`instance_lifecycle`, `instance_devices`, `instance_queries`) and the power-state
sync (`instance.InstanceActor`) build on it.

Published events (topic -> object):

    instance.<uuid>.state        Instance holding only the changed fields (and the uuid)
    instance.<uuid>.power_state  InstanceInfo(state): the power state, when it changed
    instance.<uuid>.snapshot     ImageMeta of the snapshot being written (status queued,
                                 saving, active; killed when it failed)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from actors.actor import Actor
from actors.addresses import TRACKER_ADDRESS
from actors.instance.driver import InstanceDriver
from actors.instance.errors import (
    InstanceInvalidState,
    InstanceNotFound,
    InvalidInstanceArgument,
    NotSupported,
)
from actors.instance.method import running_method
from actors.instance.recovery import (
    RecoveryDataInvalid,
    RecoveryRecord,
    decode_recovery,
    encode_recovery,
)
from actors.instance.settings import InstanceSettings
from actors.instance.states import (
    SAVE_TASKS,
    Operation,
    check_allowed,
    invalid_state,
    reconcile_recovered,
    snapshot_paused,
    vm_state_for_power,
)
from actors.records import RecordSaver
from schemas.base import VersionedObject
from schemas.errors import VirtactorError
from schemas.objects.enums import PowerState, TaskState, VMState
from schemas.objects.instance import Instance
from schemas.objects.virt import InstanceInfo

log = logging.getLogger(__name__)

# What is published for a domain whose state cannot be read: nova's NOSTATE ("pending"),
# never SHUTDOWN, as an unreadable guest may well be running.
UNKNOWN_POWER_STATE = PowerState.PENDING


# Never in an event: whoever subscribes to an instance's events would read them.
PRIVATE_FIELDS = ("user_data", "key_data")


def public_view(instance: Instance) -> Instance:
    """`instance` (a copy made for publishing) without its private fields."""
    for name in PRIVATE_FIELDS:
        if instance.obj_attr_is_set(name):
            delattr(instance, name)
    return instance


class EventSink(Protocol):
    """Where the agent's actors publish what happened (the bus, in the agent)."""

    async def publish(self, topic: str, obj: VersionedObject) -> None: ...


class InstanceHypervisor(Protocol):
    """What an instance actor needs from the hypervisor to know its power state."""

    async def read_power_state(self, uuid: str) -> PowerState | None:
        """The domain's power state now; `PowerState.PENDING` (no state) when the domain
        does not exist, None when its state cannot be read."""
        ...


def power_state_topic(uuid: str) -> str:
    return f"instance.{uuid}.power_state"


def state_topic(uuid: str) -> str:
    return f"instance.{uuid}.state"


def snapshot_topic(uuid: str) -> str:
    return f"instance.{uuid}.snapshot"


@dataclass(slots=True, frozen=True)
class ReceivedEvent:
    """A domain event as the instance actor received it."""

    kind: str
    detail: str
    sequence: int


def utc_now() -> datetime:
    return datetime.now(UTC)


class InstanceCore(Actor):
    """State and helpers of the actor of instance `uuid`; see the module docstring.

    `record` is None while the actor knows no instance (never spawned here, destroyed, or a
    guest adopted without recovery data). `power_state` is the last state read (None:
    unknown, or never read).
    """

    def __init__(
        self,
        uuid: str,
        hypervisor: InstanceHypervisor,
        sink: EventSink,
        *,
        driver: InstanceDriver | None = None,
        settings: InstanceSettings | None = None,
        down_confirm_delay: float = 0.0,
        history: int = 64,
        clock: Callable[[], datetime] = utc_now,
        records: RecordSaver | None = None,
        migrations: Any = None,
        host: str | None = None,
    ) -> None:
        """`migrations`: this host's `MigrationSupport` (actors/instance/migration.py), None
        when the agent takes no part in live migrations. `host`: this agent's host name,
        recorded as the instance's host (and node) when it is built here."""
        self.uuid = uuid
        self.host = host
        self.migration_support = migrations
        self.running_migration: str | None = None
        # Recovered from a spawn the agent was stopped in, finished: see `spawn`.
        self.interrupted_spawn = False
        self.settings = settings or InstanceSettings()
        self.record: RecoveryRecord | None = None
        self.power_state: PowerState | None = None
        self.received: deque[ReceivedEvent] = deque(maxlen=history)
        self.syncs = 0  # state reads so far
        self.unconfirmed_downs = 0  # "shut off" reads the confirmation read found up again
        self._hypervisor = hypervisor
        self._sink = sink
        self._driver = driver
        self._clock = clock
        self._down_confirm_delay = down_confirm_delay
        self._published: PowerState | None = None
        self._confirm: asyncio.Task[None] | None = None
        self._loaded = False
        # The record in the object backend (actors/records.py); `_unsaved`: a save failed,
        # so the whole record is saved at the next chance (a change, or the next resync).
        self._records = records or RecordSaver(None)
        self._unsaved = False

    # --- life cycle ------------------------------------------------------------------------

    async def on_start(self) -> None:
        await self._try_load()

    async def _try_load(self) -> None:
        """`_load`, logging a failure instead of raising it: not a crash, the next message
        that needs the record tries again."""
        try:
            await self._load()
        except VirtactorError as exc:
            log.warning(
                "instance %s: recovery data not loaded yet: %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )

    async def on_stop(self) -> None:
        if self._confirm is not None:
            self._confirm.cancel()
            await asyncio.wait([self._confirm])
            self._confirm = None

    async def _load(self) -> None:
        """Read the record back from the domain's <metadata>, once per incarnation."""
        if self._loaded or self._driver is None:
            return
        try:
            data = await self._driver.load_recovery(self.uuid)
        except InstanceNotFound:
            data = None
        self._loaded = True
        if data is None:
            return
        try:
            record = decode_recovery(self.uuid, data)
        except RecoveryDataInvalid as exc:
            log.error("%s", exc, extra={"instance_uuid": self.uuid})
            return
        self.record = record
        await self._reconcile_recovered()

    async def _reconcile_recovered(self) -> None:
        assert self.record is not None
        instance = self.record.instance
        shown = await self._read()
        if instance.task_state == TaskState.SPAWNING and shown == PowerState.SHUTDOWN:
            shown = await self._finish_interrupted_spawn(shown)
        if snapshot_paused(instance.vm_state, instance.task_state, shown):
            shown = await self._resume_after_snapshot(shown)
        saved = False
        if instance.task_state in SAVE_TASKS and shown == PowerState.SHUTDOWN:
            saved = await self._managed_save_or_none()
        settled = reconcile_recovered(instance.vm_state, instance.task_state, shown, saved)
        # The spawn sent again (its reply never left) is answered with this instance.
        self.interrupted_spawn = (
            instance.task_state == TaskState.SPAWNING and settled.vm_state == VMState.ACTIVE
        )
        log.info(
            "instance %s recovered: vm_state %s, task_state %s, power_state %s",
            self.uuid,
            settled.vm_state,
            settled.task_state,
            shown,
            extra={"instance_uuid": self.uuid},
        )
        await self._commit(
            strict=False,
            vm_state=settled.vm_state,
            task_state=settled.task_state,
            power_state=shown,
        )

    async def _resume_after_snapshot(self, shown: PowerState) -> PowerState:
        """The agent stopped while a snapshot's copy had the guest paused: resume it, as the
        snapshot would have whatever happened to the copy. A resume that fails leaves the
        guest paused, recorded so."""
        log.warning(
            "instance %s: its snapshot was interrupted with the guest paused; resuming it",
            self.uuid,
            extra={"instance_uuid": self.uuid},
        )
        try:
            await self._need_driver().unpause(self.uuid)
        except VirtactorError as exc:
            log.error(
                "instance %s: the guest an interrupted snapshot paused cannot be resumed: %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )
            return shown
        return await self._read()

    async def _managed_save_or_none(self) -> bool:
        """Whether libvirt holds the guest's managed save image; False (logged) when that
        cannot be read: the guest is then recorded stopped, and a start (`power_on`)
        still restores the image libvirt may hold."""
        try:
            return await self._need_driver().has_managed_save(self.uuid)
        except VirtactorError as exc:
            log.warning(
                "instance %s: managed save image not looked for: %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )
            return False

    async def _finish_interrupted_spawn(self, shown: PowerState) -> PowerState:
        """The agent stopped between defining the domain and starting it (the domain is
        defined only once every file is made): start it now. A start that fails leaves the
        guest off, recorded as an error."""
        log.warning(
            "instance %s: its spawn was interrupted before the guest started; starting it",
            self.uuid,
            extra={"instance_uuid": self.uuid},
        )
        try:
            await self._need_driver().power_on(self.uuid)
        except VirtactorError as exc:
            log.error(
                "instance %s: the interrupted spawn cannot be finished: %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )
            return shown
        return await self._read()

    # --- what every operation does first ---------------------------------------------------

    @property
    def method(self) -> str:
        """The driver method running now (see `driver_method`)."""
        return running_method()

    def _check_target(self, instance: Instance) -> None:
        """Refuse an `instance` argument that names another instance than this actor's."""
        if not instance.obj_attr_is_set("uuid"):
            raise self._bad_argument("instance", "it has no uuid")
        if instance.uuid != self.uuid:
            raise self._bad_argument("instance", f"it names instance {instance.uuid}")

    def _need_driver(self) -> InstanceDriver:
        if self._driver is None:
            reason = "this agent has no instance driver configured"
            raise NotSupported(operation=self.method, reason=reason)
        return self._driver

    async def _begin(self, instance: Instance) -> RecoveryRecord:
        """The record of the instance the running method works on, after checking the
        request and reading the power state.

        A guest the actor has no record of (adopted, not spawned here) takes the caller's
        `instance` as its record, with the power state read now; a guest that does not exist
        is `InstanceNotFound`; a state that cannot be read is the driver's typed reason
        (`HypervisorUnavailable` while libvirt is unreachable), never a state conflict.
        """
        self._check_target(instance)
        self._need_driver()
        await self._load()
        shown = await self._read_or_raise()
        if self.record is not None:
            # Events are triggers, not truth: the state check below sees the guest as it is.
            await self._apply_power(shown)
            return self.record
        if shown == PowerState.PENDING:
            raise InstanceNotFound(uuid=self.uuid)
        adopted = instance.obj_clone()
        adopted.task_state = None
        adopted.power_state = shown
        adopted.obj_reset_changes(recursive=True)
        self.record = RecoveryRecord(adopted)
        log.info(
            "instance %s adopted from the request (no recovery data)",
            self.uuid,
            extra={"instance_uuid": self.uuid},
        )
        await self._need_driver().store_recovery(self.uuid, encode_recovery(self.record))
        return self.record

    async def _read_or_raise(self) -> PowerState:
        """The power state now; when it cannot be read, the driver's own reason why, as a
        typed error (unreachable, not found), so that no operation mistakes an unknown
        state for a conflict."""
        shown = await self._read()
        if self.power_state is None:
            shown = await self._need_driver().power_state(self.uuid)
            self.power_state = shown
        return shown

    def _allowed(self, operation: str | None = None) -> Operation:
        """The state-table entry of `operation` (the running method by default), if the
        instance may start it now; `InstanceInvalidState` if not."""
        assert self.record is not None
        instance = self.record.instance
        return check_allowed(
            operation or self.method,
            self.uuid,
            instance.vm_state,
            instance.task_state,
            instance.power_state,
        )

    async def _operate(
        self, work: Callable[[Operation], Awaitable[None]], operation: str | None = None
    ) -> Instance:
        """Run `work` as `operation` (the running method by default) on the loaded record:
        check the state, show the task_state while it runs, then record the vm_state it
        ends in and the power state read afterwards. If `work` fails, the task_state is
        cleared and the power state read again before the error propagates. Returns a copy
        of the record."""
        op = self._allowed(operation)
        if op.task_state is not None:
            await self._commit(strict=True, task_state=op.task_state)
        await self._run_or_settle(work(op))
        shown = await self._read()
        assert self.record is not None
        vm_state = op.done or self.record.instance.vm_state
        await self._commit(task_state=None, vm_state=vm_state, power_state=shown)
        return self.record.instance.obj_clone()

    async def _act(
        self, instance: Instance, verb: Callable[[InstanceDriver], Awaitable[None]]
    ) -> Instance:
        """The whole of a plain operation: check the request, then `verb(driver)` as the
        running method (`_begin`, then `_operate`)."""
        await self._begin(instance)
        driver = self._need_driver()
        return await self._operate(lambda op: verb(driver))

    async def _run_or_settle(self, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except Exception:  # whatever failed (libvirt's own errors too) propagates as it is
            await self._settle_after_failure()
            raise

    async def _settle_after_failure(self) -> None:
        if self.record is None:
            return
        shown = await self._read()
        try:
            await self._commit(task_state=None, power_state=shown)
        except VirtactorError as exc:  # the operation's own error is the one to report
            log.warning("instance %s: %s", self.uuid, exc, extra={"instance_uuid": self.uuid})

    # --- the host's resources --------------------------------------------------------------

    async def _claim_resources(self, instance: Instance) -> None:
        """Claim `instance`'s flavor from the host's resource tracker, when the agent runs
        one; its `ClaimFailed` (or bad-request error) propagates as it is."""
        if TRACKER_ADDRESS in self.system:
            args = {"instance": instance, "flavor": instance.flavor}
            await self.system.ask(TRACKER_ADDRESS, "instance_claim", args)

    async def _resources_built(self, instance: Instance) -> None:
        """Tell the tracker the spawn is done (its claim is no longer in progress)."""
        if TRACKER_ADDRESS in self.system:
            await self.system.tell(TRACKER_ADDRESS, "instance_built", {"instance": instance})

    async def _release_resources(self, instance: Instance) -> None:
        """Give back what `instance` holds in the tracker. A failure is logged: the guest is
        gone either way, and the next audit finds its claim without a domain and drops it."""
        if TRACKER_ADDRESS not in self.system:
            return
        try:
            await self.system.ask(TRACKER_ADDRESS, "abort_instance_claim", {"instance": instance})
        except VirtactorError as exc:
            log.warning(
                "instance %s: claim not released (the next audit will): %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )

    # --- changing the record ---------------------------------------------------------------

    async def _commit(self, *, strict: bool = False, store: bool = True, **values: Any) -> None:
        """Set `values` on the record, keep it in the domain's <metadata>, publish the change.

        Fields that already hold the value are left alone, so an event carries only what
        changed; nothing changed, nothing happens. A record that cannot be stored fails the
        call when `strict` (before an operation: nothing done yet), else it is logged (after
        one: the guest already changed; the next store catches up).
        """
        if self.record is None:
            return
        instance = self.record.instance
        instance.obj_reset_changes(recursive=True)
        for name, value in values.items():
            if not instance.obj_attr_is_set(name) or getattr(instance, name) != value:
                setattr(instance, name, value)
        if not instance.obj_what_changed():
            return
        instance.updated_at = self._clock()
        changes = instance.obj_changes_only()
        if store:
            await self._store(strict)
        await self._save_record(instance.obj_changes_only())
        await self._sink.publish(state_topic(self.uuid), public_view(changes))
        instance.obj_reset_changes(recursive=True)
        if "power_state" in changes.obj_what_changed():
            await self._publish(PowerState(instance.power_state))

    async def _save_record(self, changes: Instance | None, *, force: bool = False) -> None:
        """Save the record's `changes` in the object backend; the whole record instead while
        an earlier save is owed (or `changes` is None). A failure is logged, and owed.
        `force`: try even just after a failure (a resync)."""
        if self.record is None:
            return
        if changes is None or self._unsaved:
            whole = self.record.instance.obj_clone()
            saved = await self._records.save(whole, whole=True, force=force)
        else:
            saved = await self._records.save(changes)
        self._unsaved = not saved

    async def _store(self, strict: bool) -> None:
        if self.record is None or self._driver is None:
            return
        try:
            await self._driver.store_recovery(self.uuid, encode_recovery(self.record))
        except VirtactorError as exc:
            if strict:
                raise
            log.warning(
                "instance %s: recovery data not stored: %s",
                self.uuid,
                exc,
                extra={"instance_uuid": self.uuid},
            )

    def _invalid_state(self, attr: str, state: str | None) -> InstanceInvalidState:
        return invalid_state(self.method, self.uuid, attr, state)

    def _bad_argument(self, argument: str, reason: str) -> InvalidInstanceArgument:
        return InvalidInstanceArgument(
            action=self.method, uuid=self.uuid, argument=argument, reason=reason
        )

    # --- power state -----------------------------------------------------------------------

    async def _apply_power(self, shown: PowerState) -> None:
        """Record a power state read outside any operation (and the vm_state it implies),
        then publish it."""
        if self.record is not None and self.record.instance.task_state == "migrating":
            # In flight: the domain stops here and starts on the destination, whose actor
            # records it there; the migration actor tells this one how it ended.
            return
        if self.record is not None:
            instance = self.record.instance
            vm_state = vm_state_for_power(
                instance.vm_state, instance.task_state, instance.power_state, shown
            )
            values: dict[str, Any] = {"power_state": shown}
            if vm_state is not None:
                values["vm_state"] = vm_state
            # A guest that is gone has no <metadata> to store to.
            await self._commit(store=shown != PowerState.PENDING, **values)
        await self._publish(shown)

    async def _read(self) -> PowerState:
        """The power state now, `UNKNOWN_POWER_STATE` when it cannot be read."""
        state = await self._hypervisor.read_power_state(self.uuid)
        self.syncs += 1
        self.power_state = state
        return UNKNOWN_POWER_STATE if state is None else state

    async def _publish(self, shown: PowerState) -> None:
        if shown != self._published:
            log.info(
                "instance %s power state %s -> %s",
                self.uuid,
                self._published,
                shown,
                extra={"instance_uuid": self.uuid},
            )
            await self._sink.publish(power_state_topic(self.uuid), InstanceInfo(state=shown))
            self._published = shown
