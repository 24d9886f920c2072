"""The instance actor's live-migration handlers, as the ComputeDriver names them.

On the source: `live_migration` (hands the workflow to a migration actor and returns),
`check_can_live_migrate_source`, `post_live_migration`, `live_migration_abort`,
`live_migration_force_complete`. On the destination, for an instance that is not there
yet: `check_can_live_migrate_destination`(`_cleanup`), `pre_live_migration`,
`post_live_migration_at_destination`, `rollback_live_migration_at_destination`. The
sequence between them is `actors.migration.actor`'s; docs/migration.md draws it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from actors.actor import Actor
from actors.addresses import TRACKER_ADDRESS, migration_address
from actors.handlers import handler
from actors.instance.errors import NotSupported
from actors.instance.filtering import FilteringCore
from actors.instance.method import driver_method
from actors.instance.recovery import RecoveryRecord
from actors.migration.errors import MigrationNotFound, MigrationPreCheckError
from actors.migration.request import MigrationRequest
from actors.migration.settings import MigrationSettings
from actors.migration.slots import MigrationSlots
from schemas.errors import VirtactorError
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.compute_node import ComputeNode
from schemas.objects.enums import MigrationStatus, PowerState, VMState
from schemas.objects.instance import Instance
from schemas.objects.migrate_data import LiveMigrateData, LiveMigrateDisk
from schemas.objects.migration import Migration
from schemas.objects.migration_policy import MigrationPolicy
from schemas.objects.network import NetworkInfo

log = logging.getLogger(__name__)

# The biggest config drive a block migration carries in its messages (base64 grows it by a
# third; a request is at most [rpc] max_message_bytes, 4 MiB by default).
MAX_CARRIED_CONFIG_DRIVE = 2 * 1024 * 1024


class LocalFilesLike(Protocol):
    """A guest's local disks and boot images (`agent.virt.migration.disks.LocalFiles`)."""

    @property
    def disks(self) -> list[LiveMigrateDisk]: ...

    @property
    def boot_images(self) -> list[str]: ...

    @property
    def config_drive(self) -> bytes | None: ...


class HostMigrationDriver(Protocol):
    """What the migration handlers ask of this host (the agent's LibvirtMigrationDriver)."""

    async def compare_cpu(self, uuid: str, cpu_info: str) -> None:
        """`MigrationPreCheckError` when this host's CPU cannot run a guest of that CPU."""
        ...

    async def create_probe(self) -> str:
        """A new file in the instances path; its name."""
        ...

    async def probe_exists(self, name: str) -> bool: ...

    async def remove_probe(self, name: str) -> None: ...

    async def disk_available_mb(self) -> int: ...

    async def local_files(self, uuid: str) -> LocalFilesLike:
        """The guest's local disks and the cached images it boots from."""
        ...

    async def prepare_incoming(self, instance: Instance, data: LiveMigrateData) -> None:
        """The instance's directory (and, for a block migration, its disks) made ready."""
        ...

    def instance_dir(self, uuid: str) -> str: ...

    @property
    def image_cache_dir(self) -> str: ...

    async def remove_local_files(self, instance: Instance) -> None: ...


@dataclass(slots=True, frozen=True)
class MigrationSupport:
    """How this host takes part in live migrations: its service name, the addresses other
    hosts reach it on, its defaults, its driver, and how a migration actor is made."""

    host: str
    libvirt_uri: str  # this host's libvirtd as other hosts' libvirtd reach it
    address: str  # where this host's QEMU listens for an incoming migration stream
    inbound_address: str  # where other hosts send it (`address` unless a proxy is between)
    settings: MigrationSettings
    driver: HostMigrationDriver
    make_actor: Callable[[MigrationRequest], Actor]
    slots: MigrationSlots
    # Resizes and cold migrations (actors.instance.resize): calls to other agents
    # (`actors.migration.actor.PeerCalls`) and the host's `HostResizeDriver`; None: not served.
    peers: Any = None
    resize: Any = None


class MigrationHandlers(FilteringCore):
    """The live-migration methods of the contract; see the module docstring."""

    def _migrations(self) -> MigrationSupport:
        support = self.migration_support
        if not isinstance(support, MigrationSupport):
            reason = "this agent is not configured for live migration"
            raise NotSupported(operation=self.method, reason=reason)
        return support

    # --- the source --------------------------------------------------------------------------

    @driver_method
    async def live_migration(
        self,
        instance: Instance,
        dest: str,
        migration: Migration,
        block_migration: bool = False,
        migrate_data: LiveMigrateData | None = None,
        policy: MigrationPolicy | None = None,
    ) -> Migration:
        """Start moving the running guest to host `dest`; returns the `Migration` as it
        starts (status queued). Progress and the end are published on
        `migration.<uuid>.status` and `.progress`; the guest's task_state is migrating
        until it ends."""
        support = self._migrations()
        if not dest or dest == support.host:
            raise MigrationPreCheckError(
                uuid=self.uuid, reason=f"destination {dest!r} is this host"
            )
        for name in ("uuid", "instance_uuid"):
            if not migration.obj_attr_is_set(name):
                raise self._bad_argument("migration", f"it has no {name}")
        if migration.instance_uuid != self.uuid:
            raise self._bad_argument("migration", f"it moves instance {migration.instance_uuid}")
        address = migration_address(migration.uuid)
        if address in self.system:
            raise self._bad_argument("migration", f"migration {migration.uuid} already runs")
        record = await self._begin(instance)
        self._allowed()
        started = migration.obj_clone()
        started.status = MigrationStatus.QUEUED
        started.source_compute = support.host
        started.dest_compute = dest
        request = MigrationRequest(
            instance=record.instance.obj_clone(),
            dest=dest,
            migration=started,
            policy=policy or support.settings.default_policy(),
            block_migration=block_migration,
            migrate_data=migrate_data,
        )
        await self._commit(strict=True, task_state="migrating")
        self.running_migration = migration.uuid
        ref = self.system.spawn(address, lambda: support.make_actor(request))
        result = await ref.ask("start")
        assert isinstance(result, Migration)
        return result

    @driver_method
    async def check_can_live_migrate_source(
        self, instance: Instance, dest_check_data: LiveMigrateData
    ) -> LiveMigrateData:
        """Whether the guest can leave for the destination that answered `dest_check_data`:
        shared storage (the destination's probe file seen here) or a block migration, not
        both, not neither. Returns the data with `is_shared_instance_path` filled in."""
        support = self._migrations()
        await self._begin(instance)
        checked = dest_check_data.obj_clone()
        probe = checked.filename
        shared = probe is not None and await support.driver.probe_exists(probe)
        checked.is_shared_instance_path = shared
        if checked.block_migration and shared:
            reason = "block migration asked between hosts that share the instances path"
            raise MigrationPreCheckError(uuid=self.uuid, reason=reason)
        if not checked.block_migration and not shared:
            reason = "the hosts share no instances path: ask for a block migration"
            raise MigrationPreCheckError(uuid=self.uuid, reason=reason)
        if checked.block_migration:
            files = await support.driver.local_files(self.uuid)
            checked.local_disks = list(files.disks)
            checked.boot_images = list(files.boot_images)
            if files.config_drive is not None:
                if len(files.config_drive) > MAX_CARRIED_CONFIG_DRIVE:
                    reason = (
                        f"its config drive ({len(files.config_drive)} bytes) is larger than "
                        f"a block migration carries ({MAX_CARRIED_CONFIG_DRIVE})"
                    )
                    raise MigrationPreCheckError(uuid=self.uuid, reason=reason)
                checked.config_drive = base64.b64encode(files.config_drive).decode()
        return checked

    @driver_method
    async def post_live_migration(
        self,
        instance: Instance,
        block_device_info: BlockDeviceMappingList | None = None,
        migrate_data: LiveMigrateData | None = None,
    ) -> None:
        """The guest left this host: release its claim, remove its local files (unless the
        instances path is shared), and forget it."""
        support = self._migrations()
        self._check_target(instance)
        migration = migrate_data.migration if migrate_data is not None else None
        if TRACKER_ADDRESS in self.system and migration is not None:
            await self._quietly(
                self.system.ask(
                    TRACKER_ADDRESS, "drop_move_claim_at_source", {"migration": migration}
                )
            )
        if migrate_data is None or not migrate_data.is_shared_instance_path:
            await self._quietly(support.driver.remove_local_files(instance))
        await self._unfilter_quietly()
        self.record = None
        self.running_migration = None
        await self._publish(await self._read())

    @handler
    async def live_migration_ended(self, completed: bool) -> None:
        """From this instance's migration actor: the migration failed or was cancelled, so
        the guest stays here (its task_state is cleared). Not served over RPC."""
        self.running_migration = None
        if not completed and self.record is not None:
            shown = await self._read()
            await self._commit(task_state=None, power_state=shown)

    @driver_method
    async def live_migration_abort(self, instance: Instance, migration_id: str) -> bool:
        """Cancel the running migration `migration_id` of this guest (it stays here);
        False when it is too late (the guest already moved)."""
        self._check_target(instance)
        return bool(await self._migration_actor(migration_id).ask("abort"))

    @driver_method
    async def live_migration_force_complete(self, instance: Instance) -> bool:
        """Make the running migration end now: post-copy where permitted, else the guest
        pauses for the last pages. False when no job runs yet."""
        self._check_target(instance)
        running = self.running_migration
        if running is None:
            raise MigrationNotFound(uuid=self.uuid, migration="(none)")
        return bool(await self._migration_actor(running).ask("force_complete"))

    def _migration_actor(self, migration_id: str) -> Any:
        address = migration_address(migration_id)
        if address not in self.system:
            raise MigrationNotFound(uuid=self.uuid, migration=migration_id)
        return self.system.lookup(address)

    # --- the destination ---------------------------------------------------------------------

    @driver_method
    async def check_can_live_migrate_destination(
        self,
        instance: Instance,
        block_migration: bool = False,
        disk_over_commit: bool = False,
        src_compute_info: ComputeNode | None = None,
    ) -> LiveMigrateData:
        """Whether the guest may come here: not here already, a compatible CPU, room in the
        tracker. Leaves a probe file in the instances path for the source to look for
        (removed by `check_can_live_migrate_destination_cleanup`)."""
        support = self._migrations()
        self._check_target(instance)
        if await self._read() != PowerState.PENDING:
            raise MigrationPreCheckError(uuid=self.uuid, reason="it already has a domain here")
        if src_compute_info is not None and src_compute_info.obj_attr_is_set("cpu_info"):
            await support.driver.compare_cpu(self.uuid, src_compute_info.cpu_info)
        if TRACKER_ADDRESS in self.system:
            await self.system.ask(TRACKER_ADDRESS, "check_claim", {"instance": instance})
        return LiveMigrateData(
            block_migration=block_migration,
            disk_over_commit=disk_over_commit,
            disk_available_mb=await support.driver.disk_available_mb(),
            filename=await support.driver.create_probe(),
            target_connect_addr=support.inbound_address,
            dest_listen_addr=support.address,
            dest_libvirt_uri=support.libvirt_uri,
        )

    @driver_method
    async def check_can_live_migrate_destination_cleanup(
        self, instance: Instance, dest_check_data: LiveMigrateData
    ) -> None:
        """Remove the probe file the check left."""
        support = self._migrations()
        self._check_target(instance)
        if dest_check_data.filename:
            await support.driver.remove_probe(dest_check_data.filename)

    @driver_method
    async def pre_live_migration(
        self,
        instance: Instance,
        migrate_data: LiveMigrateData,
        block_device_info: BlockDeviceMappingList | None = None,
        network_info: NetworkInfo | None = None,
    ) -> LiveMigrateData:
        """Get ready to receive the guest: an incoming slot taken (`MigrationBusy` when this
        host receives its most already), its share of this host claimed (a move claim on
        the migration), its directory (and disks, for a block migration) made. Returns the
        data the source migrates with."""
        support = self._migrations()
        self._check_target(instance)
        migration = migrate_data.migration
        if migration is None:
            raise self._bad_argument("migrate_data", "it names no migration")
        if any(disk.virtual_size <= 0 for disk in migrate_data.local_disks):
            raise self._bad_argument("migrate_data", "a local disk has no positive size")
        if migrate_data.config_drive is not None:
            try:
                base64.b64decode(migrate_data.config_drive, validate=True)
            except (binascii.Error, ValueError):
                raise self._bad_argument("migrate_data", "its config_drive is not base64") from None
        support.slots.take_incoming(migration.uuid, self.uuid)
        try:
            if TRACKER_ADDRESS in self.system:
                args = {"instance": instance, "migration": migration}
                await self.system.ask(TRACKER_ADDRESS, "move_claim", args)
            try:
                await support.driver.prepare_incoming(instance, migrate_data)
                # The guest's interfaces name their filters: they must exist before it comes.
                vifs = network_info if network_info is not None else instance.network_info
                await self._filter(vifs or NetworkInfo())
            except BaseException:
                await self._unfilter_quietly()
                await self._drop_move_claim(migration)
                raise
        except BaseException:
            support.slots.give_back_incoming(migration.uuid)
            raise
        prepared = migrate_data.obj_clone()
        prepared.target_connect_addr = support.inbound_address
        prepared.dest_listen_addr = support.address
        prepared.dest_libvirt_uri = support.libvirt_uri
        prepared.dest_instance_dir = support.driver.instance_dir(self.uuid)
        prepared.dest_image_cache_dir = support.driver.image_cache_dir
        return prepared

    @driver_method
    async def post_live_migration_at_destination(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_migration: bool = False,
        block_device_info: BlockDeviceMappingList | None = None,
        migrate_data: LiveMigrateData | None = None,
    ) -> Instance:
        """The guest runs here now: take it over from the record its domain carries (or the
        caller's), recorded on this host; the move claim becomes its claim."""
        support = self._migrations()
        self._check_target(instance)
        self._loaded = False
        self.record = None
        await self._load()
        if self.record is None:
            adopted = instance.obj_clone()
            adopted.task_state = None
            self.record = RecoveryRecord(adopted)
        shown = await self._read()
        if shown == PowerState.PAUSED and instance.vm_state == VMState.ACTIVE:
            # Paused by a force-complete for its last pages: it ran before, so it runs now.
            await self._need_driver().unpause(self.uuid)
            shown = await self._read()
        await self._commit(
            host=support.host,
            node=support.host,
            task_state=None,
            power_state=shown,
        )
        migration = migrate_data.migration if migrate_data is not None else None
        if migration is not None:
            support.slots.give_back_incoming(migration.uuid)
        if TRACKER_ADDRESS in self.system and migration is not None:
            await self._quietly(
                self.system.ask(TRACKER_ADDRESS, "confirm_move_claim", {"migration": migration})
            )
        return self.record.instance.obj_clone()

    @driver_method
    async def rollback_live_migration_at_destination(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
        migrate_data: LiveMigrateData | None = None,
    ) -> None:
        """Undo `pre_live_migration`: any domain the failed job left here removed, the files
        a block migration made here removed (never files of a shared instances path), the
        move claim released."""
        support = self._migrations()
        self._check_target(instance)
        driver = self._need_driver()
        block = migrate_data is not None and migrate_data.block_migration
        if await self._read() != PowerState.PENDING:
            await driver.destroy(instance, destroy_disks=destroy_disks and block)
        elif destroy_disks and block:
            await support.driver.remove_local_files(instance)
        await self._unfilter_quietly()
        if migrate_data is not None and migrate_data.migration is not None:
            await self._drop_move_claim(migrate_data.migration)
            support.slots.give_back_incoming(migrate_data.migration.uuid)
        self.record = None
        self._loaded = False

    async def _drop_move_claim(self, migration: Migration) -> None:
        if TRACKER_ADDRESS in self.system:
            await self._quietly(
                self.system.ask(TRACKER_ADDRESS, "drop_move_claim", {"migration": migration})
            )

    async def _quietly(self, step: Any) -> None:
        try:
            await step
        except VirtactorError as exc:
            log.warning("instance %s: %s", self.uuid, exc, extra={"instance_uuid": self.uuid})
