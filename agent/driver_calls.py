"""Typed coroutines for the driver methods, one per ComputeDriver method the agent serves.

`ComputeClient` inherits these; each is a thin, typed call of the generic `call`, named and
argued exactly as the driver method (see the catalogue in `agent.rpc.catalogue`). Instance
methods go to that instance's actor on `host`; every one takes `timeout` (seconds, the
client's default when None): give long operations (spawn, power_off, snapshot) room.
"""

from __future__ import annotations

from typing import cast

from agent.driver_calls_host import Caller, HostDriverCalls
from agent.driver_calls_host import on_instance as _on  # short: it is on every line below
from schemas.objects import (
    VIF,
    BlockDeviceMapping,
    BlockDeviceMappingList,
    ConsoleInfo,
    Diagnostics,
    ImageMeta,
    Instance,
    NetworkInfo,
    VolumeConnection,
    VolumeConnector,
)


class InstanceDriverCalls:
    """The instance-scoped driver methods. State-changing ones return the `Instance` as its
    actor recorded it afterwards."""

    async def spawn(
        self: Caller,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        network_info: NetworkInfo | None = None,
        block_device_info: BlockDeviceMappingList | None = None,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {
            "image_meta": image_meta,
            "network_info": network_info,
            "block_device_info": block_device_info,
        }
        return cast(Instance, await _on(self, host, "spawn", instance, timeout, args))

    async def destroy(
        self: Caller,
        host: str,
        instance: Instance,
        destroy_disks: bool = True,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {"destroy_disks": destroy_disks}
        return cast(Instance, await _on(self, host, "destroy", instance, timeout, args))

    async def cleanup(
        self: Caller,
        host: str,
        instance: Instance,
        destroy_disks: bool = True,
        *,
        timeout: float | None = None,
    ) -> None:
        await _on(self, host, "cleanup", instance, timeout, {"destroy_disks": destroy_disks})

    async def reboot(
        self: Caller,
        host: str,
        instance: Instance,
        reboot_type: str = "SOFT",
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {"reboot_type": reboot_type}
        return cast(Instance, await _on(self, host, "reboot", instance, timeout, args))

    async def power_off(
        self: Caller,
        host: str,
        instance: Instance,
        shutdown_timeout: float | None = None,
        retry_interval: float | None = None,
        *,
        timeout: float | None = None,
    ) -> Instance:
        """`shutdown_timeout` is the driver's `timeout` (clean shutdown, then hard)."""
        args = {"timeout": shutdown_timeout, "retry_interval": retry_interval}
        return cast(Instance, await _on(self, host, "power_off", instance, timeout, args))

    async def power_on(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "power_on", instance, timeout))

    async def pause(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "pause", instance, timeout))

    async def unpause(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "unpause", instance, timeout))

    async def suspend(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "suspend", instance, timeout))

    async def resume(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "resume", instance, timeout))

    async def soft_delete(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "soft_delete", instance, timeout))

    async def restore(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "restore", instance, timeout))

    async def rescue(
        self: Caller,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {"image_meta": image_meta}
        return cast(Instance, await _on(self, host, "rescue", instance, timeout, args))

    async def unrescue(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        return cast(Instance, await _on(self, host, "unrescue", instance, timeout))

    async def resume_state_on_host_boot(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Instance:
        method = "resume_state_on_host_boot"
        return cast(Instance, await _on(self, host, method, instance, timeout))

    async def poll_rebooting_instances(
        self: Caller, host: str, uuid: str, reboot_timeout: float, *, timeout: float | None = None
    ) -> bool:
        """Whether instance `uuid`'s overdue reboot was finished (hard)."""
        args = {"timeout": reboot_timeout}
        result = await self.call(
            host, "poll_rebooting_instances", args, instance=uuid, timeout=timeout
        )
        return cast(bool, result)

    async def snapshot(
        self: Caller,
        host: str,
        instance: Instance,
        image_id: str,
        *,
        timeout: float | None = None,
    ) -> str:
        """The path of the qcow2 image written on `host`."""
        return cast(
            str,
            await _on(self, host, "snapshot", instance, timeout, {"image_id": image_id}),
        )

    async def attach_volume(
        self: Caller,
        host: str,
        instance: Instance,
        connection_info: VolumeConnection,
        mountpoint: str,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {"connection_info": connection_info, "mountpoint": mountpoint}
        return cast(Instance, await _on(self, host, "attach_volume", instance, timeout, args))

    async def detach_volume(
        self: Caller,
        host: str,
        instance: Instance,
        connection_info: VolumeConnection,
        mountpoint: str,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {"connection_info": connection_info, "mountpoint": mountpoint}
        return cast(Instance, await _on(self, host, "detach_volume", instance, timeout, args))

    async def swap_volume(
        self: Caller,
        host: str,
        instance: Instance,
        old_connection_info: VolumeConnection,
        new_connection_info: VolumeConnection,
        mountpoint: str,
        resize_to: int = 0,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {
            "old_connection_info": old_connection_info,
            "new_connection_info": new_connection_info,
            "mountpoint": mountpoint,
            "resize_to": resize_to,
        }
        return cast(Instance, await _on(self, host, "swap_volume", instance, timeout, args))

    async def attach_interface(
        self: Caller,
        host: str,
        instance: Instance,
        vif: VIF,
        image_meta: ImageMeta | None = None,
        *,
        timeout: float | None = None,
    ) -> Instance:
        args = {"vif": vif, "image_meta": image_meta}
        method = "attach_interface"
        return cast(Instance, await _on(self, host, method, instance, timeout, args))

    async def detach_interface(
        self: Caller, host: str, instance: Instance, vif: VIF, *, timeout: float | None = None
    ) -> Instance:
        return cast(
            Instance,
            await _on(self, host, "detach_interface", instance, timeout, {"vif": vif}),
        )

    async def get_volume_connector(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> VolumeConnector:
        connector = await _on(self, host, "get_volume_connector", instance, timeout)
        return cast(VolumeConnector, connector)

    async def default_root_device_name(
        self: Caller,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        root_bdm: BlockDeviceMapping | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        args = {"image_meta": image_meta, "root_bdm": root_bdm}
        method = "default_root_device_name"
        return cast(str, await _on(self, host, method, instance, timeout, args))

    async def default_device_names_for_instance(
        self: Caller,
        host: str,
        instance: Instance,
        root_device_name: str,
        block_device_mappings: BlockDeviceMappingList,
        *,
        timeout: float | None = None,
    ) -> BlockDeviceMappingList:
        args = {
            "root_device_name": root_device_name,
            "block_device_mappings": block_device_mappings,
        }
        method = "default_device_names_for_instance"
        result = await _on(self, host, method, instance, timeout, args)
        return cast(BlockDeviceMappingList, result)

    async def get_diagnostics(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> Diagnostics:
        return cast(Diagnostics, await _on(self, host, "get_diagnostics", instance, timeout))

    async def block_stats(
        self: Caller, host: str, instance: Instance, disk_id: str, *, timeout: float | None = None
    ) -> list[int]:
        stats = await _on(self, host, "block_stats", instance, timeout, {"disk_id": disk_id})
        return cast(list[int], stats)

    async def interface_stats(
        self: Caller, host: str, instance: Instance, iface_id: str, *, timeout: float | None = None
    ) -> list[int]:
        stats = await _on(self, host, "interface_stats", instance, timeout, {"iface_id": iface_id})
        return cast(list[int], stats)

    async def get_console_output(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> str:
        return cast(str, await _on(self, host, "get_console_output", instance, timeout))

    async def get_vnc_console(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> ConsoleInfo:
        return cast(ConsoleInfo, await _on(self, host, "get_vnc_console", instance, timeout))

    async def get_serial_console(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> ConsoleInfo:
        return cast(ConsoleInfo, await _on(self, host, "get_serial_console", instance, timeout))

    async def macs_for_instance(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> list[str]:
        return cast(list[str], await _on(self, host, "macs_for_instance", instance, timeout))

    async def change_instance_metadata(
        self: Caller,
        host: str,
        instance: Instance,
        diff: dict[str, list[str]],
        *,
        timeout: float | None = None,
    ) -> Instance:
        method = "change_instance_metadata"
        return cast(Instance, await _on(self, host, method, instance, timeout, {"diff": diff}))

    async def set_admin_password(
        self: Caller, host: str, instance: Instance, new_pass: str, *, timeout: float | None = None
    ) -> None:
        await _on(self, host, "set_admin_password", instance, timeout, {"new_pass": new_pass})

    async def inject_file(
        self: Caller,
        host: str,
        instance: Instance,
        path: str,
        contents: bytes,
        *,
        timeout: float | None = None,
    ) -> None:
        await _on(
            self, host, "inject_file", instance, timeout, {"path": path, "contents": contents}
        )

    async def inject_network_info(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo,
        *,
        timeout: float | None = None,
    ) -> Instance:
        method = "inject_network_info"
        args = {"network_info": network_info}
        return cast(Instance, await _on(self, host, method, instance, timeout, args))

    async def reset_network(
        self: Caller, host: str, instance: Instance, *, timeout: float | None = None
    ) -> None:
        await _on(self, host, "reset_network", instance, timeout)


class DriverCalls(HostDriverCalls, InstanceDriverCalls):
    """Every served driver method, host-scoped and per instance."""
