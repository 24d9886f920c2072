"""The instance actor's power handlers: reboot, power off/on, pause, suspend, soft delete,
rescue, and bringing guests back after a host boot or an interrupted reboot.

Like every operation they check the request, then the state (`instance_states`), show their
task_state while the driver works, and record where they end (`InstanceCore._operate`).
"""

from __future__ import annotations

import logging

from actors.instance.core import InstanceCore
from actors.instance.method import driver_method
from actors.instance.recovery import RecoveryRecord, encode_recovery
from actors.instance.states import Operation, reboot_overdue, should_resume_on_host_boot
from schemas.objects.block_device import BlockDeviceMappingList
from schemas.objects.enums import PowerState, TaskState
from schemas.objects.image import ImageMeta
from schemas.objects.instance import Instance
from schemas.objects.network import NetworkInfo

log = logging.getLogger(__name__)

REBOOT_TYPES = ("SOFT", "HARD")


class PowerHandlers(InstanceCore):
    """reboot, power_off/on, pause/unpause, suspend/resume, soft_delete/restore,
    rescue/unrescue, resume_state_on_host_boot, poll_rebooting_instances."""

    # --- power -------------------------------------------------------------------------------

    @driver_method
    async def reboot(
        self,
        instance: Instance,
        reboot_type: str = "SOFT",
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
    ) -> Instance:
        """SOFT: an ACPI reboot, falling back to HARD when the guest has not rebooted within
        `reboot_timeout`. HARD: the domain is destroyed and created again from its config."""
        if reboot_type not in REBOOT_TYPES:
            raise self._bad_argument("reboot_type", f"{reboot_type!r} is not SOFT or HARD")
        record = await self._begin(instance)
        driver = self._need_driver()
        if reboot_type == "HARD":
            return await self._reboot_hard(record)

        async def soft(op: Operation) -> None:
            if await driver.reboot_soft(self.uuid, self.settings.reboot_timeout):
                return
            log.warning(
                "instance %s did not reboot within %.0fs of the ACPI request; rebooting hard",
                self.uuid,
                self.settings.reboot_timeout,
                extra={"instance_uuid": self.uuid},
            )
            await self._commit(task_state=TaskState.REBOOTING_HARD)
            await driver.reboot_hard(record.instance)

        return await self._operate(soft, "reboot_soft")

    async def _reboot_hard(self, record: RecoveryRecord) -> Instance:
        driver = self._need_driver()

        async def hard(op: Operation) -> None:
            await driver.reboot_hard(record.instance)

        return await self._operate(hard, "reboot_hard")

    @driver_method
    async def power_off(
        self, instance: Instance, timeout: float | None = None, retry_interval: float | None = None
    ) -> Instance:
        """A clean shutdown (ACPI, pressed again every `retry_interval` seconds) for up to
        `timeout` seconds, then a hard power off; `timeout` 0 powers off at once. Unset, they
        are the agent's `shutdown_timeout` and `shutdown_retry_interval`."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        interval = retry_interval
        if interval is None:
            interval = self.settings.shutdown_retry_interval
        if timeout < 0 or interval <= 0:
            raise self._bad_argument(
                "timeout", f"timeout {timeout} must be >= 0 and retry_interval {interval} > 0"
            )
        await self._begin(instance)

        async def off(op: Operation) -> None:
            await self._shut_down(timeout, interval)

        return await self._operate(off)

    async def _shut_down(self, timeout: float, interval: float) -> None:
        driver = self._need_driver()
        if timeout > 0 and self.power_state == PowerState.RUNNING:
            if await driver.shutdown(self.uuid, timeout, interval):
                log.info("instance %s shut down cleanly", self.uuid)
                return
            log.warning(
                "instance %s did not shut down within %.0fs; powering it off",
                self.uuid,
                timeout,
                extra={"instance_uuid": self.uuid},
            )
        await driver.power_off_hard(self.uuid)

    @driver_method
    async def power_on(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
    ) -> Instance:
        """Start the stopped guest from its definition."""
        return await self._act(instance, lambda driver: driver.power_on(self.uuid))

    @driver_method
    async def pause(self, instance: Instance) -> Instance:
        """Freeze the running guest's vCPUs (it stays in memory)."""
        return await self._act(instance, lambda driver: driver.pause(self.uuid))

    @driver_method
    async def unpause(self, instance: Instance) -> Instance:
        return await self._act(instance, lambda driver: driver.unpause(self.uuid))

    @driver_method
    async def suspend(self, instance: Instance) -> Instance:
        """Save the guest's memory to disk (libvirt's managed save) and stop it."""
        return await self._act(instance, lambda driver: driver.suspend(self.uuid))

    @driver_method
    async def resume(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
    ) -> Instance:
        """Start the suspended guest from its saved memory."""
        return await self._act(instance, lambda driver: driver.resume(self.uuid))

    @driver_method
    async def soft_delete(self, instance: Instance) -> Instance:
        """Keep the guest and its disks but stop it (cleanly, as power_off), until restore."""
        await self._begin(instance)
        settings = self.settings

        async def off(op: Operation) -> None:
            if self.power_state in (PowerState.RUNNING, PowerState.PAUSED):
                await self._shut_down(settings.shutdown_timeout, settings.shutdown_retry_interval)

        return await self._operate(off)

    @driver_method
    async def restore(self, instance: Instance) -> Instance:
        """Bring a soft-deleted instance back: its guest is started again."""
        return await self._act(instance, lambda driver: driver.power_on(self.uuid))

    @driver_method
    async def rescue(self, instance: Instance, image_meta: ImageMeta) -> Instance:
        """Boot the guest from a fresh disk of `image_meta`, its own root disk attached
        second, so an operator can repair it; `unrescue` returns to the original."""
        record = await self._begin(instance)
        driver = self._need_driver()

        async def work(op: Operation) -> None:
            await driver.rescue(record.instance, image_meta, encode_recovery(record))

        return await self._operate(work)

    @driver_method
    async def unrescue(self, instance: Instance) -> Instance:
        record = await self._begin(instance)
        driver = self._need_driver()

        async def work(op: Operation) -> None:
            await driver.unrescue(record.instance, encode_recovery(record))

        return await self._operate(work)

    @driver_method
    async def resume_state_on_host_boot(
        self,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
    ) -> Instance:
        """After the host booted: an active instance whose guest does not run is started
        again (a hard reboot, from its config); anything else is left as it is."""
        record = await self._begin(instance)
        self._allowed()
        shown = await self._read()
        await self._commit(power_state=shown)
        if not should_resume_on_host_boot(record.instance.vm_state, shown):
            return record.instance.obj_clone()
        return await self._reboot_hard(record)

    @driver_method
    async def poll_rebooting_instances(self, timeout: float) -> bool:
        """Finish a reboot recorded as in progress for more than `timeout` seconds (one an
        agent restart interrupted) with a hard reboot. Returns whether it rebooted."""
        driver = self._need_driver()
        await self._load()
        record = self.record
        if record is None:
            return False
        instance = record.instance
        if not reboot_overdue(instance.task_state, instance.updated_at, self._clock(), timeout):
            return False
        log.warning(
            "instance %s: reboot (%s) overdue; rebooting hard",
            self.uuid,
            instance.task_state,
            extra={"instance_uuid": self.uuid},
        )

        async def hard(op: Operation) -> None:
            await driver.reboot_hard(record.instance)

        await self._operate(hard, "reboot_hard")
        return True
