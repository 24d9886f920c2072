"""The migration actor: one live migration, driven from its source host to its end.

The source instance actor's `live_migration` spawns it at `migration:<uuid>` and returns;
this actor then runs the contract's steps, agent to agent over the bus (`peers`) and with
its own host's actors, keeping the `Migration` record (saved through the object backend)
and publishing each change:

    queued -> preparing    check_can_live_migrate_destination (destination), _source (here),
                           check_can_live_migrate_destination_cleanup (destination)
              preparing    pre_live_migration (destination: move claim, disks, networking)
           -> running      the libvirt job, polled every `poll_interval`: progress events,
                           the policy's downtime steps, post-copy, force-complete, abort
           -> post-migrating  post_live_migration_at_destination (destination adopts the
                           guest, its claim made permanent), post_live_migration (here:
                           cleanup, the source's claim released)
           -> completed
    any failure before the guest moved: rollback_live_migration_at_destination, the guest
    stays on the source untouched -> failed (or cancelled, when aborted)

Topics: `migration.<uuid>.status` (the `Migration`, whole) and `migration.<uuid>.progress`
(`MigrationProgress`, one per poll). The handlers `live_migration_abort` and
`live_migration_force_complete` reach the running job: the workflow runs as a task of this
actor, never inside a handler, so they are answered while it runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from actors.actor import Actor
from actors.addresses import TRACKER_ADDRESS, instance_address
from actors.handlers import handler
from actors.instance.core import EventSink
from actors.migration.errors import MigrationBusy, MigrationFailed, MigrationPreCheckError
from actors.migration.monitor import Action, ConvergenceMonitor, JobProgress
from actors.migration.request import MigrationRequest
from actors.migration.settings import MigrationSettings
from actors.migration.slots import MigrationSlots
from actors.migration.target import MigrationTarget, PathMap
from actors.records import RecordSaver
from schemas.errors import VirtactorError
from schemas.objects.enums import MigrationAction, MigrationPhase, MigrationStatus
from schemas.objects.migrate_data import LiveMigrateData
from schemas.objects.migration import Migration
from schemas.objects.migration_policy import MigrationPolicy
from schemas.objects.migration_progress import MigrationProgress

log = logging.getLogger(__name__)


class PeerCalls(Protocol):
    """Calls to other agents (the agent's `ComputeClient`)."""

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
    ) -> Any: ...


class MigrationDriver(Protocol):
    """The libvirt side of a running migration (the agent's LibvirtMigrationDriver)."""

    async def migrate(self, uuid: str, target: MigrationTarget, policy: MigrationPolicy) -> None:
        """Run the job to its end; raises when it fails or is aborted."""
        ...

    async def progress(self, uuid: str) -> JobProgress | None: ...

    async def set_max_downtime(self, uuid: str, downtime_ms: int) -> None: ...

    async def start_post_copy(self, uuid: str) -> None: ...

    async def suspend(self, uuid: str) -> None: ...

    async def abort(self, uuid: str) -> None: ...

    async def postcopy_failed(self, uuid: str) -> bool:
        """Whether the job broke after the switch to post-copy (the guest waits, paused, on
        the destination for pages only this host has)."""
        ...

    async def resume_post_copy(
        self, uuid: str, target: MigrationTarget, policy: MigrationPolicy
    ) -> None:
        """Resume a broken post-copy job over a new stream; returns when it completes."""
        ...

    def instance_dir(self, uuid: str) -> str: ...

    @property
    def image_cache_dir(self) -> str: ...


_ENDED = frozenset(
    {
        MigrationStatus.COMPLETED,
        MigrationStatus.FAILED,
        MigrationStatus.CANCELLED,
        MigrationStatus.ERROR,
    }
)


def status_topic(uuid: str) -> str:
    return f"migration.{uuid}.status"


def progress_topic(uuid: str) -> str:
    return f"migration.{uuid}.progress"


class MigrationActor(Actor):
    """See the module docstring. `host` is this (the source) agent's host name."""

    def __init__(
        self,
        host: str,
        request: MigrationRequest,
        settings: MigrationSettings,
        peers: PeerCalls,
        driver: MigrationDriver,
        sink: EventSink,
        *,
        records: RecordSaver | None = None,
        slots: MigrationSlots | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.request = request
        self.settings = settings
        self.migration = request.migration.obj_clone()
        self.uuid = request.instance.uuid
        self.aborted = False
        self.forced = False
        self.progress: MigrationProgress | None = None
        self._peers = peers
        self._driver = driver
        self._sink = sink
        self._records = records or RecordSaver(None)
        self._clock = clock
        self._slots = slots or MigrationSlots(host, 1, 1, settings.incoming_slot_timeout)
        self._task: asyncio.Task[None] | None = None
        self._job_running = False
        # The guest runs on the destination (the job completed, or switched to post-copy):
        # no rollback any more, and no abort.
        self._moved = False
        self._copying = False  # the job has started moving memory
        self._phase = MigrationPhase.PRE_COPY
        self._actions: list[str] = []  # the policy actions taken, as published
        self._gave_up = ""  # why the policy aborted the job
        self._started_at = self._clock()

    # --- handlers ----------------------------------------------------------------------------

    @handler
    async def start(self) -> Migration:
        """Start the workflow (once); returns the record as it stands."""
        if self._task is None:
            self._started_at = self._clock()
            self._task = asyncio.create_task(self._run(), name=f"{self.address}:workflow")
        return self.migration.obj_clone()

    @handler
    async def abort(self) -> bool:
        """Cancel the migration: the job is aborted and the guest stays on the source.
        False once the guest has moved (too late to cancel)."""
        if self._moved or self._task is None or self._task.done():
            return False
        self.aborted = True
        if self._job_running:
            await self._driver.abort(self.uuid)
        return True

    @handler
    async def force_complete(self) -> bool:
        """Make the job end now: post-copy where the policy permits it, else the guest is
        paused for the last pages. False when no job runs. Before the job copies anything
        (QEMU cannot switch a migration that has not started), it is done at the first poll
        that shows memory moving."""
        if not self._job_running or self._moved:
            return False
        if not self.forced:
            self.forced = True
            if self._copying:
                await self._apply(Action(self._force_action(), None, "forced by a caller"))
        return True

    @handler
    async def get_migration(self) -> Migration:
        return self.migration.obj_clone()

    async def on_stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])

    # --- the workflow ------------------------------------------------------------------------

    async def _run(self) -> None:
        prepared: LiveMigrateData | None = None
        try:
            # Queued until this host runs fewer than `max_outgoing` migrations.
            async with self._slots.outgoing():
                self._stop_if_aborted()
                await self._set_status(MigrationStatus.PREPARING)
                checked = await self._checks()
                self._stop_if_aborted()
                prepared = await self._prepare(checked)
                self._stop_if_aborted()
                await self._set_status(MigrationStatus.RUNNING)
                await self._migrate(prepared)
                self._moved = True
                await self._set_status(MigrationStatus.POST_MIGRATING)
                await self._finish(prepared)
                await self._set_status(MigrationStatus.COMPLETED)
        except asyncio.CancelledError:
            if not self._moved:
                await asyncio.shield(self._roll_back(prepared, "the agent stopped"))
            raise
        except Exception as exc:  # each step's typed error; anything else is a bug
            reason = str(exc) if isinstance(exc, VirtactorError) else repr(exc)
            if not isinstance(exc, VirtactorError):
                log.exception("migration %s of %s failed", self.migration.uuid, self.uuid)
            if self._moved:
                # The guest runs on the destination: nothing to roll back, an operator's
                # attention needed for what did not finish.
                log.error("migration %s: the guest moved, then: %s", self.migration.uuid, reason)
                await self._set_status(MigrationStatus.ERROR)
            else:
                await self._roll_back(prepared, reason)
        await self._stop_self()

    async def _checks(self) -> LiveMigrateData:
        request = self.request
        if request.dest == self.host:
            raise MigrationPreCheckError(uuid=self.uuid, reason="the destination is this host")
        source_node = None
        if TRACKER_ADDRESS in self.system:
            source_node = await self.system.ask(TRACKER_ADDRESS, "get_compute_node")
        dest_check = await self._peer(
            "check_can_live_migrate_destination",
            {
                "instance": request.instance,
                "block_migration": request.block_migration,
                "src_compute_info": source_node,
            },
        )
        assert isinstance(dest_check, LiveMigrateData)
        try:
            checked = await self.system.ask(
                instance_address(self.uuid),
                "check_can_live_migrate_source",
                {"instance": request.instance, "dest_check_data": dest_check},
            )
        finally:
            await self._quietly(
                "check_can_live_migrate_destination_cleanup",
                {"instance": request.instance, "dest_check_data": dest_check},
            )
        assert isinstance(checked, LiveMigrateData)
        checked.migration = self.migration.obj_clone()
        return checked

    async def _prepare(self, checked: LiveMigrateData) -> LiveMigrateData:
        """`pre_live_migration` on the destination; asked again while it is busy (it
        receives its most migrations already), up to `busy_wait_timeout`."""
        request = self.request
        args = {
            "instance": request.instance,
            "block_device_info": request.instance.block_device_mappings,
            "network_info": request.instance.network_info,
            "migrate_data": checked,
        }
        deadline = self._clock() + self.settings.busy_wait_timeout
        while True:
            try:
                prepared = await self._peer("pre_live_migration", args)
            except MigrationBusy as exc:
                if self._clock() >= deadline:
                    reason = f"the destination stayed busy for {self.settings.busy_wait_timeout}s"
                    raise MigrationFailed(uuid=self.uuid, reason=reason) from exc
                log.info("migration %s waits: %s", self.migration.uuid, exc)
                await asyncio.sleep(self.settings.busy_retry_interval)
                self._stop_if_aborted()
                continue
            assert isinstance(prepared, LiveMigrateData)
            return prepared

    async def _migrate(self, prepared: LiveMigrateData) -> None:
        """Run the libvirt job and watch it until it ends."""
        policy = self.request.policy
        if not prepared.dest_libvirt_uri or not prepared.target_connect_addr:
            raise MigrationFailed(uuid=self.uuid, reason="the destination gave no address")
        target = MigrationTarget(
            prepared.dest_libvirt_uri,
            prepared.target_connect_addr,
            prepared.block_migration,
            disks=tuple(disk.target for disk in prepared.local_disks),
            shared_path=prepared.is_shared_instance_path,
            paths=self._path_map(prepared),
        )
        memory_mb = self.request.instance.memory_mb
        monitor = ConvergenceMonitor(policy, memory_mb, started=self._clock())
        self._job_running = True
        try:
            await self._watch(self._driver.migrate(self.uuid, target, policy), monitor)
        except MigrationFailed as exc:
            if self.aborted or self._gave_up:  # the job's own "canceled" says less
                reason = "aborted" if self.aborted else f"aborted by its policy: {self._gave_up}"
                raise MigrationFailed(uuid=self.uuid, reason=reason) from exc
            if not await self._postcopy_failed():
                raise
            await self._recover(target, monitor, exc)
        finally:
            self._job_running = False
        if self.aborted:
            raise MigrationFailed(uuid=self.uuid, reason="aborted")
        if self._gave_up:
            raise MigrationFailed(uuid=self.uuid, reason=f"aborted by its policy: {self._gave_up}")

    async def _watch(self, step: Awaitable[None], monitor: ConvergenceMonitor) -> None:
        """Run the job `step` and poll it until it ends: progress published, the policy's
        actions taken. The first poll of a migration sets the policy's max downtime."""
        policy = self.request.policy
        job = asyncio.ensure_future(step)
        try:
            while not job.done():
                await asyncio.wait([job], timeout=self.settings.poll_interval)
                if job.done():
                    break
                progress = await self._poll()
                if progress is None:
                    continue
                if progress.postcopy:
                    self._moved = True  # the guest runs on the destination from now on
                    self._phase = MigrationPhase.POST_COPY
                if monitor.lowest is None:  # the first poll of the job
                    await self._try(
                        self._driver.set_max_downtime(self.uuid, policy.max_downtime_ms)
                    )
                if not self._copying and progress.memory_processed > 0:
                    self._copying = True
                    if self.forced and not self._moved:  # asked before anything moved
                        await self._apply(Action(self._force_action(), None, "forced by a caller"))
                for action in monitor.observe(progress, self._clock()):
                    await self._apply(action)
                await self._publish_progress(progress, monitor)
            await job
        except BaseException:
            if not job.done():
                if not self._moved:  # a post-copy job cannot be aborted
                    await self._try(self._driver.abort(self.uuid))
                await asyncio.wait([job])
            raise

    async def _postcopy_failed(self) -> bool:
        try:
            return await self._driver.postcopy_failed(self.uuid)
        except VirtactorError as exc:
            log.warning("migration %s: state not read: %s", self.migration.uuid, exc)
            return False

    async def _recover(
        self, target: MigrationTarget, monitor: ConvergenceMonitor, cause: Exception
    ) -> None:
        """The stream broke after the switch to post-copy: the guest runs (paused, waiting
        for pages) on the destination and only this host has the rest of its memory. Resume
        the job over a new stream until it completes, or give up after
        `postcopy_recovery_timeout` (the guest stays paused there; the record ends `error`)."""
        self._moved = True
        limit = self.settings.postcopy_recovery_timeout
        deadline = self._clock() + limit
        log.error("migration %s: post-copy broke, resuming: %s", self.migration.uuid, cause)
        await self._publish_phase(MigrationPhase.POST_COPY_PAUSED)
        while True:
            if self._clock() >= deadline:
                reason = f"post-copy not resumed within {limit:.0f}s (last: {cause})"
                raise MigrationFailed(uuid=self.uuid, reason=reason) from cause
            await asyncio.sleep(self.settings.postcopy_retry_interval)
            await self._publish_phase(MigrationPhase.POST_COPY_RECOVERING)
            policy = self.request.policy
            try:
                await self._watch(self._driver.resume_post_copy(self.uuid, target, policy), monitor)
            except MigrationFailed as exc:
                cause = exc
                if not await self._postcopy_failed():
                    raise
                log.warning("migration %s: not resumed yet: %s", self.migration.uuid, exc)
                await self._publish_phase(MigrationPhase.POST_COPY_PAUSED)
                continue
            log.warning("migration %s: post-copy resumed and completed", self.migration.uuid)
            return

    def _path_map(self, prepared: LiveMigrateData) -> PathMap | None:
        """The paths to rewrite in the domain the destination gets; None when they match."""
        if prepared.is_shared_instance_path or not prepared.dest_instance_dir:
            return None
        paths = PathMap(
            source_dir=self._driver.instance_dir(self.uuid),
            dest_dir=prepared.dest_instance_dir,
            source_cache=self._driver.image_cache_dir,
            dest_cache=prepared.dest_image_cache_dir or self._driver.image_cache_dir,
        )
        if (paths.source_dir, paths.source_cache) == (paths.dest_dir, paths.dest_cache):
            return None
        return paths

    async def _poll(self) -> JobProgress | None:
        try:
            return await self._driver.progress(self.uuid)
        except VirtactorError as exc:
            log.info("migration %s: progress not read: %s", self.migration.uuid, exc)
            return None

    async def _apply(self, action: Action) -> None:
        log.warning(
            "migration %s of %s: %s (%s)",
            self.migration.uuid,
            self.uuid,
            action.action,
            action.reason,
        )
        label = str(action.action)
        if action.action is MigrationAction.SET_DOWNTIME and action.downtime_ms:
            label = f"{label}:{action.downtime_ms}"
            await self._try(self._driver.set_max_downtime(self.uuid, action.downtime_ms))
        elif action.action is MigrationAction.POST_COPY:
            await self._try(self._driver.start_post_copy(self.uuid))
        elif action.action is MigrationAction.FORCE_COMPLETE:
            await self._try(self._driver.suspend(self.uuid))
        elif action.action is MigrationAction.ABORT:
            # The policy gave up: failed (a caller's abort is what `cancelled` means).
            self._gave_up = action.reason
            await self._try(self._driver.abort(self.uuid))
        self._actions.append(label)

    def _force_action(self) -> MigrationAction:
        if self.request.policy.post_copy:
            return MigrationAction.POST_COPY
        return MigrationAction.FORCE_COMPLETE

    async def _finish(self, prepared: LiveMigrateData) -> None:
        """The guest runs on the destination: its agent adopts it, this one lets go."""
        request = self.request
        await self._peer(
            "post_live_migration_at_destination",
            {
                "instance": request.instance,
                "network_info": request.instance.network_info,
                "block_migration": request.block_migration,
                "block_device_info": request.instance.block_device_mappings,
                "migrate_data": prepared,
            },
        )
        await self.system.ask(
            instance_address(self.uuid),
            "post_live_migration",
            {
                "instance": request.instance,
                "block_device_info": request.instance.block_device_mappings,
                "migrate_data": prepared,
            },
        )

    async def _roll_back(self, prepared: LiveMigrateData | None, reason: str) -> None:
        """Undo the destination's preparation (always asked: a pre_live_migration that timed
        out may still have run there), give the instance back its state, end the record."""
        request = self.request
        data = prepared or LiveMigrateData(migration=self.migration.obj_clone())
        await self._quietly(
            "rollback_live_migration_at_destination",
            {
                "instance": request.instance,
                "network_info": request.instance.network_info,
                "block_device_info": request.instance.block_device_mappings,
                "destroy_disks": not data.is_shared_instance_path,
                "migrate_data": data,
            },
        )
        try:
            await self.system.ask(
                instance_address(self.uuid), "live_migration_ended", {"completed": False}
            )
        except VirtactorError as exc:
            log.warning("migration %s: instance not told: %s", self.migration.uuid, exc)
        status = MigrationStatus.CANCELLED if self.aborted else MigrationStatus.FAILED
        log.warning(
            "migration %s of %s to %s %s: %s",
            self.migration.uuid,
            self.uuid,
            request.dest,
            status,
            reason,
        )
        await self._set_status(status)

    async def _stop_self(self) -> None:
        # Not awaited from the workflow's own task: stopping cancels and waits for it.
        me = self.address
        asyncio.get_running_loop().call_soon(
            lambda: asyncio.ensure_future(self.system.stop(me)) if me in self.system else None
        )

    # --- helpers -----------------------------------------------------------------------------

    def _stop_if_aborted(self) -> None:
        if self.aborted:
            raise MigrationFailed(uuid=self.uuid, reason="aborted")

    async def _peer(self, method: str, args: dict[str, Any]) -> Any:
        return await self._peers.call(
            self.request.dest,
            method,
            args,
            instance=self.uuid,
            timeout=self.settings.peer_timeout,
        )

    async def _quietly(self, method: str, args: dict[str, Any]) -> None:
        try:
            await self._peer(method, args)
        except VirtactorError as exc:
            log.warning(
                "migration %s: %s on %s failed: %s",
                self.migration.uuid,
                method,
                self.request.dest,
                exc,
            )

    async def _try(self, step: Any) -> None:
        try:
            await step
        except VirtactorError as exc:
            log.warning("migration %s: %s", self.migration.uuid, exc)

    async def _set_status(self, status: MigrationStatus) -> None:
        self.migration.status = status
        if status in _ENDED:
            # The agent's metrics: migrations by outcome and duration (once, at the end).
            seconds = self._clock() - self._started_at
            self.system.stats.workflows.migration_finished(str(status), seconds)
        await self._records.save(self.migration.obj_clone(), whole=True)
        await self._sink.publish(status_topic(self.migration.uuid), self.migration.obj_clone())

    async def _publish_progress(self, progress: JobProgress, monitor: ConvergenceMonitor) -> None:
        self.migration.memory_total = progress.memory_total
        self.migration.memory_processed = progress.memory_processed
        self.migration.memory_remaining = progress.memory_remaining
        self.migration.disk_total = progress.disk_total
        self.migration.disk_processed = progress.disk_processed
        self.migration.disk_remaining = progress.disk_remaining
        await self._records.save(self.migration.obj_changes_only())
        self.migration.obj_reset_changes()
        self.progress = MigrationProgress(
            migration_uuid=self.migration.uuid,
            instance_uuid=self.uuid,
            status=self.migration.status,
            percent=progress.percent,
            elapsed_ms=progress.elapsed_ms,
            memory_total=progress.memory_total,
            memory_processed=progress.memory_processed,
            memory_remaining=progress.memory_remaining,
            disk_total=progress.disk_total,
            disk_processed=progress.disk_processed,
            disk_remaining=progress.disk_remaining,
            iteration=progress.iteration,
            dirty_rate=progress.dirty_rate,
            downtime_ms=progress.downtime_ms,
            postcopy=progress.postcopy,
            stalls=monitor.stalls,
            actions=list(self._actions),
            phase=self._phase,
        )
        await self._sink.publish(progress_topic(self.migration.uuid), self.progress.obj_clone())

    async def _publish_phase(self, phase: MigrationPhase) -> None:
        """The last progress again, in its new phase (no job statistics to read meanwhile)."""
        self._phase = phase
        if self.progress is None:
            self.progress = MigrationProgress(
                migration_uuid=self.migration.uuid,
                instance_uuid=self.uuid,
                status=self.migration.status,
            )
        else:
            self.progress = self.progress.obj_clone()
        self.progress.phase = phase
        self.progress.postcopy = True
        self.progress.actions = list(self._actions)
        await self._sink.publish(progress_topic(self.migration.uuid), self.progress.obj_clone())
