"""The instance actor's resize and cold-migration handlers, as the ComputeDriver names them.

On the source: `migrate_disk_and_power_off` (the guest powered off, its disks sent to the
destination's libvirtd), `confirm_migration` (the source's leftovers removed) and
`finish_revert_migration` (the guest back on with its old flavor and disks). On the
destination: `check_can_resize_destination` (asked by the source before it touches the
guest), `finish_migration` (move claim, the guest defined on the files that arrived, with the
new flavor), `confirm_migration_at_destination` (asked by the source's confirm: the move claim
made the instance's) and `revert_migration_at_destination` (the guest and its files removed,
the move claim dropped). docs/resize.md draws the sequence and what each failure leaves.

The source keeps its domain (shut off, its old definition) and its files until confirm or
revert, with task_state resize_migrated; from the disks' departure on, only the destination
saves the instance's record, until a revert gives it back to the source.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from actors.addresses import TRACKER_ADDRESS
from actors.instance.core import public_view, state_topic
from actors.instance.errors import InstanceNotFound, NotSupported
from actors.instance.filtering import FilteringCore
from actors.instance.method import driver_method
from actors.instance.migration import LocalFilesLike, MigrationSupport
from actors.instance.recovery import RecoveryRecord, encode_recovery
from actors.instance.resize_checks import (
    BadArgument,
    ResizeDestination,
    check_flavor,
    check_no_shrink,
    check_root_fits,
    disk_info_json,
    parse_disk_info,
    resized_instance,
)
from actors.instance.states import check_resize_step
from actors.migration.errors import ResizeFailed, ResizeRefused
from schemas.errors import VirtactorError
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.enums import MigrationStatus, PowerState, TaskState, VMState
from schemas.objects.flavor import Flavor
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.migrate_data import LiveMigrateData
from schemas.objects.migration import Migration
from schemas.objects.network import NetworkInfo

log = logging.getLogger(__name__)

ROOT_DISK = "disk"


class HostResizeDriver(Protocol):
    """What the resize handlers ask of this host (the agent's LibvirtResizeDriver)."""

    def instance_dir(self, uuid: str) -> str: ...

    @property
    def image_cache_dir(self) -> str: ...

    async def local_files(self, uuid: str) -> LocalFilesLike: ...

    async def send(self, uuid: str, files: Any, destination: ResizeDestination) -> list[str]:
        """Send the powered-off guest's files; `DiskTransferFailed` after removing them
        there."""
        ...

    async def finish(
        self,
        instance: Instance,
        image_meta: ImageMeta,
        block_device_info: BlockDeviceMappingList | None,
        network_info: NetworkInfo | None,
        recovery: bytes,
        arrived: list[str],
        resize_disks: bool,
        power_on: bool,
    ) -> None: ...


def migration_topic(uuid: str) -> str:
    return f"migration.{uuid}.status"


class ResizeHandlers(FilteringCore):
    """The resize methods of the contract; see the module docstring."""

    def _resizes(self) -> MigrationSupport:
        support = self.migration_support
        if (
            not isinstance(support, MigrationSupport)
            or support.resize is None
            or support.peers is None
        ):
            reason = "this agent is not configured for migrations ([migration] and guests)"
            raise NotSupported(operation=self.method, reason=reason)
        return support

    def _check_migration(self, migration: Migration) -> None:
        for name in ("uuid", "instance_uuid"):
            if not migration.obj_attr_is_set(name):
                raise self._bad_argument("migration", f"it has no {name}")
        if migration.instance_uuid != self.uuid:
            raise self._bad_argument("migration", f"it moves instance {migration.instance_uuid}")

    def _checked_flavor(self, flavor: Flavor) -> None:
        try:
            check_flavor(flavor)
        except BadArgument as exc:
            raise self._bad_argument(exc.argument, exc.reason) from None

    async def _save_migration(self, migration: Migration, status: str) -> Migration:
        """The migration's new `status`, saved in the object backend and published."""
        changed = migration.obj_clone()
        changed.status = status
        await self._records.save(changed.obj_clone(), whole=True)
        await self._sink.publish(migration_topic(changed.uuid), changed)
        return changed

    async def _tracker(self, method: str, args: dict[str, Any], *, quiet: bool = False) -> None:
        if TRACKER_ADDRESS not in self.system:
            return
        try:
            await self.system.ask(TRACKER_ADDRESS, method, args)
        except VirtactorError as exc:
            if not quiet:
                raise
            log.warning("instance %s: %s", self.uuid, exc, extra={"instance_uuid": self.uuid})

    # --- the source --------------------------------------------------------------------------

    @driver_method
    async def migrate_disk_and_power_off(
        self,
        instance: Instance,
        dest: str,
        flavor: Flavor,
        migration: Migration,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        timeout: float | None = None,
        retry_interval: float | None = None,
    ) -> str:
        """Power the guest off (ACPI for `timeout` seconds, asked again every
        `retry_interval`, then hard; `timeout` 0 at once; unset, the agent's
        `shutdown_timeout` and `shutdown_retry_interval`) and send its local files to host
        `dest`; returns nova's disk info (JSON). Refused before the guest is touched: a
        smaller disk, the destination refusing or not answering. If the files do not all
        arrive, what arrived is removed and the guest runs again here as before
        (`ResizeFailed` says so)."""
        support = self._resizes()
        assert support.resize is not None and support.peers is not None
        if not dest or dest == support.host:
            raise ResizeRefused(uuid=self.uuid, reason=f"destination {dest!r} is this host")
        self._check_migration(migration)
        if migration.obj_attr_is_set("dest_compute") and migration.dest_compute not in (None, dest):
            raise self._bad_argument("migration", f"it goes to {migration.dest_compute}")
        self._checked_flavor(flavor)
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        if retry_interval is None:
            retry_interval = self.settings.shutdown_retry_interval
        if timeout < 0 or retry_interval <= 0:
            reason = f"timeout {timeout} must be >= 0 and retry_interval {retry_interval} > 0"
            raise self._bad_argument("timeout", reason)
        record = await self._begin(instance)
        self._allowed()
        check_no_shrink(self.uuid, record.instance.flavor, flavor)
        files = await support.resize.local_files(self.uuid)
        for disk in files.disks:
            if disk.file == ROOT_DISK:
                check_root_fits(self.uuid, disk.virtual_size, flavor)
        started = migration.obj_clone()
        started.source_compute = started.source_node = support.host
        started.dest_compute = started.dest_node = dest
        destination = await self._ask_destination(support, started, flavor)
        was_running = record.instance.power_state == PowerState.RUNNING
        await self._commit(strict=True, task_state=TaskState.RESIZE_MIGRATING)
        started = await self._save_migration(started, MigrationStatus.MIGRATING)
        driver = self._need_driver()
        try:
            if timeout == 0 or not await driver.shutdown(self.uuid, timeout, retry_interval):
                await driver.power_off_hard(self.uuid)
            info = await self._disk_info(files)
            await support.resize.send(self.uuid, files, destination)
        except VirtactorError as exc:
            outcome = await self._recover(was_running)
            await self._save_migration(started, MigrationStatus.ERROR)
            raise ResizeFailed(uuid=self.uuid, reason=exc.message, outcome=outcome) from exc
        await self._commit(task_state=TaskState.RESIZE_MIGRATED, power_state=await self._read())
        await self._save_migration(started, MigrationStatus.POST_MIGRATING)
        return info

    async def _ask_destination(
        self, support: MigrationSupport, migration: Migration, flavor: Flavor
    ) -> ResizeDestination:
        """The destination's check and where it takes the files; a refusal (or no answer)
        saves the migration as `error` and propagates, typed, with the guest untouched."""
        assert support.peers is not None and self.record is not None
        args = {
            "instance": self.record.instance.obj_clone(),
            "flavor": flavor,
            "migration": migration,
        }
        dest = migration.dest_compute
        assert dest is not None
        try:
            answer = await support.peers.call(
                dest,
                "check_can_resize_destination",
                args,
                instance=self.uuid,
                timeout=support.settings.peer_timeout,
            )
        except VirtactorError:
            await self._save_migration(migration, MigrationStatus.ERROR)
            raise
        if not isinstance(answer, LiveMigrateData) or not (
            answer.dest_libvirt_uri and answer.dest_instance_dir and answer.dest_image_cache_dir
        ):
            await self._save_migration(migration, MigrationStatus.ERROR)
            reason = f"{dest} did not say where the disks go"
            raise ResizeRefused(uuid=self.uuid, reason=reason)
        return ResizeDestination(
            dest, answer.dest_libvirt_uri, answer.dest_instance_dir, answer.dest_image_cache_dir
        )

    async def _disk_info(self, files: LocalFilesLike) -> str:
        names = {disk.file for disk in files.disks}
        entries = await self._need_driver().disk_info(self.uuid, [])
        local = [e for e in entries if str(e.get("path", "")).rsplit("/", 1)[-1] in names]
        return disk_info_json(local)

    async def _recover(self, was_running: bool) -> str:
        """After a failed departure: the guest as it was (started again if it ran), its
        task cleared; what it is now, in words."""
        outcome = "the guest is powered off on the source with its disks (power_on starts it)"
        if was_running:
            try:
                await self._need_driver().power_on(self.uuid)
                outcome = "the guest runs again on the source with its disks"
            except VirtactorError as exc:
                log.error(
                    "instance %s: not started again after a failed resize: %s",
                    self.uuid,
                    exc,
                    extra={"instance_uuid": self.uuid},
                )
        shown = await self._read()
        vm_state = VMState.ACTIVE if shown == PowerState.RUNNING else VMState.STOPPED
        await self._commit(task_state=None, vm_state=vm_state, power_state=shown)
        return outcome

    @driver_method
    async def confirm_migration(
        self, migration: Migration, instance: Instance, network_info: NetworkInfo | None = None
    ) -> Migration:
        """The resize stays: remove the guest's domain and files here (and its image
        references), release its claim here, and have the destination make its move claim
        the instance's (`confirm_migration_at_destination`). Returns the Migration,
        confirmed. Each step is idempotent: after a failure, confirm again."""
        support = self._resizes()
        assert support.peers is not None
        self._check_target(instance)
        self._check_migration(migration)
        dest = migration.dest_compute if migration.obj_attr_is_set("dest_compute") else None
        if not dest or dest == support.host:
            raise self._bad_argument("migration", f"its dest_compute is {dest!r}")
        await self._load()
        if self.record is not None:
            check_resize_step(self.method, self.uuid, self.record.instance.task_state)
            await self._need_driver().destroy(instance, destroy_disks=True)
            await self._unfilter_quietly()
            self.record = None
        self._loaded = False
        at_source = migration.obj_clone()
        at_source.source_compute = support.host
        await self._tracker("drop_move_claim_at_source", {"migration": at_source}, quiet=True)
        await support.peers.call(
            dest,
            "confirm_migration_at_destination",
            {"instance": instance, "migration": migration},
            instance=self.uuid,
            timeout=support.settings.peer_timeout,
        )
        await self._publish(await self._read())
        return await self._save_migration(migration, MigrationStatus.CONFIRMED)

    @driver_method
    async def finish_revert_migration(
        self,
        instance: Instance,
        network_info: NetworkInfo | None,
        migration: Migration,
        block_device_info: BlockDeviceMappingList | None = None,
        power_on: bool = True,
    ) -> Instance:
        """The resize is undone (the destination cleaned up first,
        `revert_migration_at_destination`): the guest starts here again (if `power_on`)
        with its old flavor and disks, recorded on this host. Returns the record."""
        self._resizes()
        self._check_target(instance)
        self._check_migration(migration)
        await self._load()
        if self.record is None:
            raise InstanceNotFound(uuid=self.uuid)
        check_resize_step(self.method, self.uuid, self.record.instance.task_state)
        if power_on:
            await self._need_driver().power_on(self.uuid)
        shown = await self._read()
        vm_state = VMState.ACTIVE if shown == PowerState.RUNNING else VMState.STOPPED
        await self._commit(
            host=self.host, node=self.host, vm_state=vm_state, task_state=None, power_state=shown
        )
        # The backend holds the destination's record (host, new flavor): give it ours, whole.
        await self._save_record(None)
        await self._save_migration(migration, MigrationStatus.REVERTED)
        return self.record.instance.obj_clone()

    # --- the destination ---------------------------------------------------------------------

    @driver_method
    async def check_can_resize_destination(
        self, instance: Instance, flavor: Flavor, migration: Migration
    ) -> LiveMigrateData:
        """Whether the guest may come here with `flavor` (not here already, room in the
        tracker; nothing is claimed yet) and where its files go: this host's libvirtd as the
        source reaches it, its instance directory and image cache."""
        support = self._resizes()
        assert support.resize is not None
        self._check_target(instance)
        self._check_migration(migration)
        self._checked_flavor(flavor)
        if await self._read() != PowerState.PENDING:
            raise ResizeRefused(uuid=self.uuid, reason=f"it already has a domain on {support.host}")
        await self._tracker("check_claim", {"instance": instance, "flavor": flavor})
        return LiveMigrateData(
            disk_available_mb=await support.driver.disk_available_mb(),
            dest_libvirt_uri=support.libvirt_uri,
            dest_instance_dir=support.resize.instance_dir(self.uuid),
            dest_image_cache_dir=support.resize.image_cache_dir,
        )

    @driver_method
    async def finish_migration(
        self,
        migration: Migration,
        instance: Instance,
        disk_info: str,
        network_info: NetworkInfo | None,
        image_meta: ImageMeta,
        resize_instance: bool,
        block_device_info: BlockDeviceMappingList | None = None,
        power_on: bool = True,
    ) -> Instance:
        """The files arrived: claim `instance`'s flavor (the new one) for the migration, grow
        the disks to it (`resize_instance`), define the guest and start it (`power_on`),
        recorded here as resized. A root disk larger than the flavor's is refused first
        (`ResizeRefused`: disks never shrink). On failure the claim is dropped and nothing is
        defined; the files stay for `revert_migration_at_destination`."""
        support = self._resizes()
        assert support.resize is not None
        self._check_target(instance)
        self._check_migration(migration)
        if migration.obj_attr_is_set("dest_compute") and migration.dest_compute not in (
            None,
            support.host,
        ):
            raise self._bad_argument("migration", f"it goes to {migration.dest_compute}")
        if not instance.obj_attr_is_set("flavor"):
            raise self._bad_argument("instance", "it has no flavor")
        self._checked_flavor(instance.flavor)
        try:
            moved = parse_disk_info(disk_info)
        except BadArgument as exc:
            raise self._bad_argument(exc.argument, exc.reason) from None
        for disk in moved:
            if disk.file == ROOT_DISK:
                check_root_fits(self.uuid, disk.virt_disk_size, instance.flavor)
        if await self._read() != PowerState.PENDING:
            raise ResizeRefused(uuid=self.uuid, reason=f"it already has a domain on {support.host}")
        here = migration.obj_clone()
        here.dest_compute = here.dest_node = support.host
        await self._tracker(
            "move_claim", {"instance": instance, "migration": here, "flavor": instance.flavor}
        )
        record = RecoveryRecord(resized_instance(instance, support.host), image_meta)
        try:
            # Filtered from its first packet here: its interfaces name filters that must exist.
            await self._filter(network_info or NetworkInfo())
            await support.resize.finish(
                record.instance,
                image_meta,
                block_device_info,
                network_info,
                encode_recovery(record),
                [disk.file for disk in moved],
                resize_instance,
                power_on,
            )
        except BaseException:
            await self._tracker("drop_move_claim", {"migration": here}, quiet=True)
            await self._unfilter_quietly()
            raise
        self.record, self._loaded = record, True
        record.instance.power_state = await self._read()
        await self._store(strict=False)
        await self._save_record(None)
        await self._sink.publish(state_topic(self.uuid), public_view(record.instance.obj_clone()))
        await self._publish(PowerState(record.instance.power_state))
        record.instance.obj_reset_changes(recursive=True)
        await self._save_migration(here, MigrationStatus.FINISHED)
        return record.instance.obj_clone()

    @driver_method
    async def confirm_migration_at_destination(
        self, instance: Instance, migration: Migration
    ) -> Instance:
        """From the source's `confirm_migration`: the move claim becomes the instance's, and
        the instance is active (stopped, if it was not started)."""
        self._resizes()
        self._check_target(instance)
        self._check_migration(migration)
        await self._load()
        if self.record is None:
            raise InstanceNotFound(uuid=self.uuid)
        await self._tracker("confirm_move_claim", {"migration": migration}, quiet=True)
        shown = await self._read()
        vm_state = VMState.ACTIVE if shown == PowerState.RUNNING else VMState.STOPPED
        await self._commit(vm_state=vm_state, task_state=None, power_state=shown)
        return self.record.instance.obj_clone()

    @driver_method
    async def revert_migration_at_destination(
        self,
        instance: Instance,
        migration: Migration,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
    ) -> None:
        """The resize is reverted: the guest's domain here (if any) and its files removed,
        its image references dropped, the move claim released. Idempotent. The source's
        `finish_revert_migration` comes next."""
        self._resizes()
        self._check_target(instance)
        self._check_migration(migration)
        await self._save_migration(migration, MigrationStatus.REVERTING)
        await self._need_driver().destroy(instance, destroy_disks=True)
        await self._unfilter_quietly()
        await self._tracker("drop_move_claim", {"migration": migration}, quiet=True)
        self.record = None
        self._loaded = False
        await self._publish(await self._read())
