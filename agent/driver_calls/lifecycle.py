# mypy: disable-error-code="empty-body"
# (the bodies never run: `driver_call` makes each declared signature its call)
"""Typed coroutines for an instance's life and power (see `agent.driver_calls`).

State-changing ones return the `Instance` as its actor recorded it afterwards. Give long
operations (spawn, power_off, snapshot) an `rpc_timeout` that leaves them room.
"""

from __future__ import annotations

from agent.driver_calls.caller import driver_call
from schemas.objects import BlockDeviceMappingList, ImageMeta, Instance, NetworkInfo


class InstanceLifecycleCalls:
    """Spawn to destroy, power, rescue, snapshot."""

    @driver_call
    async def spawn(
        self,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        """After a `CallTimeout`, send it again with the same `message_id` (and arguments) to
        get the first attempt's answer instead of `InstanceInvalidState`."""

    @driver_call
    async def destroy(
        self,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def cleanup(
        self,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None: ...

    @driver_call
    async def reboot(
        self,
        host: str,
        instance: Instance,
        reboot_type: str = "SOFT",
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        """`reboot_type`: SOFT (ACPI, hard if the guest does not reboot in time) or HARD."""

    @driver_call
    async def power_off(
        self,
        host: str,
        instance: Instance,
        timeout: float | None = None,
        retry_interval: float | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        """`timeout` is the driver's: how long the guest may take to shut down cleanly before
        it is stopped hard (0: at once). Leave `rpc_timeout` room for it."""

    @driver_call
    async def power_on(
        self,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def pause(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def unpause(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def suspend(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def resume(
        self,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def soft_delete(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def restore(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def rescue(
        self,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def unrescue(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def resume_state_on_host_boot(
        self,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def poll_rebooting_instances(
        self,
        host: str,
        timeout: float,
        *,
        uuid: str,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Whether instance `uuid`'s actor found its reboot overdue by `timeout` seconds and
        finished it (hard). Each instance's actor answers for its own reboot only."""

    @driver_call
    async def snapshot(
        self,
        host: str,
        instance: Instance,
        image_id: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        """The path of the qcow2 image written on `host`."""
