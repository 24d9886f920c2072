"""Typed coroutines for an instance's life and power (see `agent.driver_calls`).

State-changing ones return the `Instance` as its actor recorded it afterwards. Give long
operations (spawn, power_off, snapshot) an `rpc_timeout` that leaves them room.
"""

from __future__ import annotations

from typing import cast

from agent.driver_calls.caller import Caller
from agent.driver_calls.caller import on_instance as _on  # short: it is on every line below
from schemas.objects import BlockDeviceMappingList, ImageMeta, Instance, NetworkInfo


class InstanceLifecycleCalls:
    """Spawn to destroy, power, rescue, snapshot."""

    async def spawn(
        self: Caller,
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
        args = {
            "image_meta": image_meta,
            "network_info": network_info,
            "block_device_info": block_device_info,
        }
        return cast(
            Instance, await _on(self, host, "spawn", instance, rpc_timeout, message_id, args)
        )

    async def destroy(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {
            "network_info": network_info,
            "block_device_info": block_device_info,
            "destroy_disks": destroy_disks,
        }
        return cast(
            Instance, await _on(self, host, "destroy", instance, rpc_timeout, message_id, args)
        )

    async def cleanup(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        destroy_disks: bool = True,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None:
        args = {
            "network_info": network_info,
            "block_device_info": block_device_info,
            "destroy_disks": destroy_disks,
        }
        await _on(self, host, "cleanup", instance, rpc_timeout, message_id, args)

    async def reboot(
        self: Caller,
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
        args = {
            "reboot_type": reboot_type,
            "network_info": network_info,
            "block_device_info": block_device_info,
        }
        return cast(
            Instance, await _on(self, host, "reboot", instance, rpc_timeout, message_id, args)
        )

    async def power_off(
        self: Caller,
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
        args = {"timeout": timeout, "retry_interval": retry_interval}
        return cast(
            Instance, await _on(self, host, "power_off", instance, rpc_timeout, message_id, args)
        )

    async def power_on(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"network_info": network_info, "block_device_info": block_device_info}
        return cast(
            Instance, await _on(self, host, "power_on", instance, rpc_timeout, message_id, args)
        )

    async def pause(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        return cast(Instance, await _on(self, host, "pause", instance, rpc_timeout, message_id))

    async def unpause(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        return cast(Instance, await _on(self, host, "unpause", instance, rpc_timeout, message_id))

    async def suspend(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        return cast(Instance, await _on(self, host, "suspend", instance, rpc_timeout, message_id))

    async def resume(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"network_info": network_info, "block_device_info": block_device_info}
        return cast(
            Instance, await _on(self, host, "resume", instance, rpc_timeout, message_id, args)
        )

    async def soft_delete(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        result = await _on(self, host, "soft_delete", instance, rpc_timeout, message_id)
        return cast(Instance, result)

    async def restore(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        return cast(Instance, await _on(self, host, "restore", instance, rpc_timeout, message_id))

    async def rescue(
        self: Caller,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"image_meta": image_meta}
        return cast(
            Instance, await _on(self, host, "rescue", instance, rpc_timeout, message_id, args)
        )

    async def unrescue(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        result = await _on(self, host, "unrescue", instance, rpc_timeout, message_id)
        return cast(Instance, result)

    async def resume_state_on_host_boot(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"network_info": network_info, "block_device_info": block_device_info}
        method = "resume_state_on_host_boot"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def poll_rebooting_instances(
        self: Caller,
        host: str,
        timeout: float,
        *,
        uuid: str,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> bool:
        """Whether instance `uuid`'s actor found its reboot overdue by `timeout` seconds and
        finished it (hard). Each instance's actor answers for its own reboot only."""
        result = await self.call(
            host,
            "poll_rebooting_instances",
            {"timeout": timeout},
            instance=uuid,
            timeout=rpc_timeout,
            message_id=message_id,
        )
        return cast(bool, result)

    async def snapshot(
        self: Caller,
        host: str,
        instance: Instance,
        image_id: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        """The path of the qcow2 image written on `host`."""
        args = {"image_id": image_id}
        return cast(str, await _on(self, host, "snapshot", instance, rpc_timeout, message_id, args))
