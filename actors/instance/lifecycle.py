"""The instance actor's create/remove handlers and snapshot, named as the ComputeDriver
methods (power and rescue are in `instance_power`).

Each one checks its request (the `instance` must be this actor's; names and ids must be
well formed), then the state (`instance_states`), shows its task_state while the driver
works, and records where it ends. A failure leaves the vm_state as it was, clears the
task_state and re-reads the power state; the driver leaves no half-done work behind.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.instance.core import (
    public_view,
    snapshot_topic,
    state_topic,
)
from actors.instance.filtering import FilteringCore
from actors.instance.method import driver_method
from actors.instance.names import (
    check_connection,
    check_domain_name,
    check_guest_path,
    check_image_id,
    check_vif,
)
from actors.instance.recovery import RecoveryRecord, encode_recovery
from actors.instance.states import Operation
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.enums import PowerState, TaskState, VMState
from schemas.objects.image import ImageMeta, ImageMetaProps
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo

log = logging.getLogger(__name__)


class LifecycleHandlers(FilteringCore):
    """spawn, destroy, cleanup, snapshot."""

    # --- creating and removing ---------------------------------------------------------------

    @driver_method
    async def spawn(
        self,
        instance: Instance,
        image_meta: ImageMeta,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        injected_files: list[Any] | None = None,
        admin_password: str | None = None,
    ) -> Instance:
        """Build the guest and start it: building/spawning, then active and running.

        `injected_files` ([path, content] pairs) and `admin_password` go on the config drive
        (an instance with `config_drive` set), never into a record; asked of an instance
        without one, they are refused.

        Refused when the actor holds a live record or a domain of this uuid exists, except
        for the spawn of an instance the agent was stopped in the middle of building, which
        it finished when it came back (the same image and flavor, sent again because its reply
        never left): that is answered with the instance as built. The
        flavor is claimed from the host's resource tracker first (`ClaimFailed` when it does
        not fit). A spawn that fails publishes vm_state error, releases the claim, and the
        actor forgets the instance: the driver removed whatever it had created, so a new
        spawn may start over.
        """
        self._check_target(instance)
        driver = self._need_driver()
        self._check_spawn_arguments(instance, network_info, block_device_info)
        files = self._injected_files(instance, injected_files, admin_password)
        await self._load()
        if self._finished_by_recovery(instance, image_meta):
            assert self.record is not None
            return self.record.instance.obj_clone()
        if self.record is not None and self.record.instance.vm_state != VMState.DELETED:
            raise self._invalid_state("vm_state", self.record.instance.vm_state)
        existing = await self._read()
        if existing != PowerState.PENDING:
            raise self._invalid_state("power_state", existing)
        built = instance.obj_clone()
        if network_info is not None:
            built.network_info = network_info
        if block_device_info is not None:
            built.block_device_mappings = block_device_info
        if self.host is not None:
            built.host = built.node = built.launched_on = self.host
        built.vm_state, built.task_state = VMState.BUILDING, TaskState.SPAWNING
        built.power_state = PowerState.PENDING
        await self._claim_resources(built)
        try:
            self.record = RecoveryRecord(built, image_meta.obj_clone())
            await self._commit_all(store=False)
            # Filtered from its first packet: its interfaces name filters that must exist.
            await self._filter(network_info or NetworkInfo())
            await driver.spawn(
                built,
                image_meta,
                block_device_info,
                network_info,
                encode_recovery(self.record),
                injected_files=files,
                admin_password=admin_password,
            )
        except Exception:  # whatever failed propagates as it is, once recorded
            await self._commit(store=False, vm_state=VMState.ERROR, task_state=None)
            self.record = None
            await self._release_resources(built)
            await self._unfilter_quietly()
            raise
        except BaseException:  # cancelled: the driver removed what it built; so do we
            self.record = None
            await self._release_resources(built)
            await self._unfilter_quietly()
            raise
        await self._resources_built(built)
        shown = await self._read()
        await self._commit(
            vm_state=VMState.ACTIVE,
            task_state=None,
            power_state=shown,
            launched_at=self._clock(),
        )
        return self.record.instance.obj_clone()

    def _finished_by_recovery(self, instance: Instance, image_meta: ImageMeta) -> bool:
        """Whether this spawn is the one the agent was stopped in and finished at recovery:
        the instance's own image and flavor, recorded active since."""
        if not self.interrupted_spawn or self.record is None:
            return False
        built = self.record.instance
        same = (
            built.vm_state == VMState.ACTIVE
            and self.record.image_meta is not None
            and self.record.image_meta.id == image_meta.id
            and built.obj_attr_is_set("flavor")
            and instance.obj_attr_is_set("flavor")
            and built.flavor.flavorid == instance.flavor.flavorid
        )
        if same:
            log.info(
                "spawn of %s answered with the instance its interrupted spawn built",
                self.uuid,
                extra={"instance_uuid": self.uuid},
            )
        return same

    def _injected_files(
        self, instance: Instance, files: list[Any] | None, admin_password: str | None
    ) -> list[tuple[str, bytes]]:
        """`files` as (path, content) pairs, each path an absolute guest path; text content
        is taken as UTF-8."""
        if (files or admin_password is not None) and not instance.config_drive:
            reason = "only a config drive carries them: set the instance's config_drive"
            raise self._bad_argument("injected_files" if files else "admin_password", reason)
        pairs: list[tuple[str, bytes]] = []
        for item in files or []:
            if not isinstance(item, list | tuple) or len(item) != 2:
                raise self._bad_argument("injected_files", "each must be a [path, content] pair")
            path, content = item
            if not isinstance(path, str) or not isinstance(content, str | bytes):
                reason = "each must be a [path (text), content (text or bytes)] pair"
                raise self._bad_argument("injected_files", reason)
            check_guest_path("inject a file", self.uuid, path)
            pairs.append((path, content.encode() if isinstance(content, str) else content))
        return pairs

    def _check_spawn_arguments(
        self,
        instance: Instance,
        network_info: NetworkInfo | None,
        block_device_info: BlockDeviceMappingList | None,
    ) -> None:
        for required in ("name", "flavor", "memory_mb", "vcpus", "root_gb"):
            if not instance.obj_attr_is_set(required):
                raise self._bad_argument(f"instance.{required}", "unset")
        check_domain_name(self.method, self.uuid, instance.name)
        for vif in network_info or []:
            check_vif(self.method, self.uuid, vif)
        for bdm in block_device_info or []:
            if bdm.connection_info is not None:
                check_connection(self.uuid, bdm.connection_info)

    async def _commit_all(self, *, store: bool) -> None:
        """Publish the whole new record (a spawn's first event), stored or not."""
        assert self.record is not None
        instance = self.record.instance
        instance.updated_at = self._clock()
        await self._save_record(None)
        await self._sink.publish(state_topic(self.uuid), public_view(instance.obj_clone()))
        instance.obj_reset_changes(recursive=True)
        if store:
            await self._store(strict=True)

    @driver_method
    async def destroy(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
    ) -> Instance:
        """Stop and remove the guest (and its disks when `destroy_disks`); idempotent.

        A guest that is already gone is success, logged as a warning. Returns the instance
        as deleted; the actor forgets it, so the uuid may be spawned again.
        """
        self._check_target(instance)
        driver = self._need_driver()
        await self._load()
        record = self.record
        if record is not None:
            self._allowed()
            await self._commit(task_state=TaskState.DELETING)
        target = record.instance if record is not None else instance
        existed = await self._run_or_settle(driver.destroy(target, destroy_disks))
        if not existed:
            log.warning(
                "destroy: instance %s had no domain; nothing to remove",
                self.uuid,
                extra={"instance_uuid": self.uuid},
            )
        await self._release_resources(target)
        await self._unfilter_quietly()
        shown = await self._read()
        done: dict[str, Any] = {
            "vm_state": VMState.DELETED,
            "task_state": None,
            "power_state": shown,
            "terminated_at": self._clock(),
        }
        if record is None:
            result = instance.obj_clone()
            for name, value in done.items():
                setattr(result, name, value)
            return result
        await self._commit(store=False, **done)
        self.record = None
        return record.instance.obj_clone()

    @driver_method
    async def cleanup(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
    ) -> None:
        """Remove what is left of a guest that no longer runs here (its definition, and its
        disks when `destroy_disks`), e.g. after it moved to another host. The instance's
        recorded state is not changed (it lives on elsewhere); the actor forgets it.
        Refused while the guest runs or is paused."""
        self._check_target(instance)
        driver = self._need_driver()
        await self._load()
        shown = await self._read()
        if self.record is not None:
            await self._commit(power_state=shown)
            self._allowed()
        elif shown in (PowerState.RUNNING, PowerState.PAUSED):
            raise self._invalid_state("power_state", shown)
        target = self.record.instance if self.record is not None else instance
        await driver.destroy(target, destroy_disks)
        self.record = None
        await self._release_resources(target)
        await self._unfilter_quietly()
        await self._publish(await self._read())

    # --- snapshot ----------------------------------------------------------------------------

    @driver_method
    async def snapshot(self, instance: Instance, image_id: str) -> str:
        """Write the guest's root disk as a qcow2 image named by `image_id` (a UUID) to the
        images directory; returns its path. Progress: task_state image_snapshot, then
        image_uploading while the file is written, and `ImageMeta` events on
        `instance.<uuid>.snapshot` (queued, saving, active; killed on failure)."""
        image_id = check_image_id(self.method, self.uuid, image_id)
        record = await self._begin(instance)
        driver = self._need_driver()
        image = self._snapshot_image(record, image_id)
        written: list[str] = []

        async def progress(percent: int) -> None:
            if image.status != "saving":
                await self._commit(task_state=TaskState.IMAGE_UPLOADING)
                await self._publish_image(image, "saving")
            log.debug("instance %s snapshot %s: %d%%", self.uuid, image_id, percent)

        async def work(op: Operation) -> None:
            await self._publish_image(image, "queued")
            try:
                written.append(await driver.snapshot(record.instance, image_id, progress))
            except Exception:
                await self._publish_image(image, "killed")
                raise
            await self._publish_image(image, "active")

        await self._operate(work)
        return written[0]

    def _snapshot_image(self, record: RecoveryRecord, image_id: str) -> ImageMeta:
        source = record.image_meta
        properties = (
            source.properties.obj_clone()
            if source is not None and source.obj_attr_is_set("properties")
            else ImageMetaProps()
        )
        return ImageMeta(
            id=image_id,
            name=f"{record.instance.name}-snapshot",
            disk_format="qcow2",
            container_format="bare",
            min_disk=record.instance.root_gb,
            min_ram=record.instance.memory_mb,
            owner=record.instance.project_id,
            properties=properties,
        )

    async def _publish_image(self, image: ImageMeta, status: str) -> None:
        image.status = status
        await self._sink.publish(snapshot_topic(self.uuid), image.obj_clone())
