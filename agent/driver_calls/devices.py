# mypy: disable-error-code="empty-body"
# (the bodies never run: `driver_call` makes each declared signature its call)
"""Typed coroutines for an instance's volumes, interfaces and device names (see
`agent.driver_calls`). State-changing ones return the `Instance` as recorded afterwards."""

from __future__ import annotations

from agent.driver_calls.caller import driver_call
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

    @driver_call
    async def attach_volume(
        self,
        host: str,
        instance: Instance,
        connection_info: VolumeConnection,
        mountpoint: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def detach_volume(
        self,
        host: str,
        instance: Instance,
        connection_info: VolumeConnection,
        mountpoint: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def swap_volume(
        self,
        host: str,
        instance: Instance,
        old_connection_info: VolumeConnection,
        new_connection_info: VolumeConnection,
        mountpoint: str,
        resize_to: int = 0,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def attach_interface(
        self,
        host: str,
        instance: Instance,
        vif: VIF,
        image_meta: ImageMeta | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def detach_interface(
        self,
        host: str,
        instance: Instance,
        vif: VIF,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def get_volume_connector(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> VolumeConnector: ...

    @driver_call
    async def macs_for_instance(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]: ...

    @driver_call
    async def default_root_device_name(
        self,
        host: str,
        instance: Instance,
        image_meta: ImageMeta,
        root_bdm: BlockDeviceMapping | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str: ...

    @driver_call
    async def default_device_names_for_instance(
        self,
        host: str,
        instance: Instance,
        root_device_name: str,
        block_device_mappings: BlockDeviceMappingList,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> BlockDeviceMappingList: ...
