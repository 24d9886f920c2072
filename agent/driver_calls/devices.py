"""Typed coroutines for an instance's volumes, interfaces and device names (see
`agent.driver_calls`). State-changing ones return the `Instance` as recorded afterwards."""

from __future__ import annotations

from typing import cast

from agent.driver_calls.caller import Caller
from agent.driver_calls.caller import on_instance as _on  # short: it is on every line below
from schemas.objects import (
    VIF,
    BlockDeviceMapping,
    BlockDeviceMappingList,
    ImageMeta,
    Instance,
    VolumeConnection,
    VolumeConnector,
)


class InstanceDeviceCalls:
    """Volumes, interfaces, device names."""

    async def attach_volume(
        self: Caller,
        host: str,
        instance: Instance,
        connection_info: VolumeConnection,
        mountpoint: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"connection_info": connection_info, "mountpoint": mountpoint}
        method = "attach_volume"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def detach_volume(
        self: Caller,
        host: str,
        instance: Instance,
        connection_info: VolumeConnection,
        mountpoint: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"connection_info": connection_info, "mountpoint": mountpoint}
        method = "detach_volume"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def swap_volume(
        self: Caller,
        host: str,
        instance: Instance,
        old_connection_info: VolumeConnection,
        new_connection_info: VolumeConnection,
        mountpoint: str,
        resize_to: int = 0,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {
            "old_connection_info": old_connection_info,
            "new_connection_info": new_connection_info,
            "mountpoint": mountpoint,
            "resize_to": resize_to,
        }
        method = "swap_volume"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def attach_interface(
        self: Caller,
        host: str,
        instance: Instance,
        vif: VIF,
        image_meta: ImageMeta | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"vif": vif, "image_meta": image_meta}
        method = "attach_interface"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def detach_interface(
        self: Caller,
        host: str,
        instance: Instance,
        vif: VIF,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"vif": vif}
        method = "detach_interface"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def get_volume_connector(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> VolumeConnector:
        method = "get_volume_connector"
        connector = await _on(self, host, method, instance, rpc_timeout, message_id)
        return cast(VolumeConnector, connector)

    async def macs_for_instance(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]:
        macs = await _on(self, host, "macs_for_instance", instance, rpc_timeout, message_id)
        return cast(list[str], macs)

    async def default_root_device_name(
        self: Caller,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        root_bdm: BlockDeviceMapping | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        args = {"image_meta": image_meta, "root_bdm": root_bdm}
        method = "default_root_device_name"
        return cast(str, await _on(self, host, method, instance, rpc_timeout, message_id, args))

    async def default_device_names_for_instance(
        self: Caller,
        host: str,
        instance: Instance,
        root_device_name: str,
        block_device_mappings: BlockDeviceMappingList,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> BlockDeviceMappingList:
        args = {
            "root_device_name": root_device_name,
            "block_device_mappings": block_device_mappings,
        }
        method = "default_device_names_for_instance"
        result = await _on(self, host, method, instance, rpc_timeout, message_id, args)
        return cast(BlockDeviceMappingList, result)
