"""Typed coroutines for the host-scoped driver methods (see `agent.driver_calls`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from schemas.objects import ComputeNode, Instance, InstanceInfo


class Caller(Protocol):
    """What the typed calls need of the client: its generic `call`."""

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
    ) -> Any: ...


async def on_instance(
    caller: Caller,
    host: str,
    method: str,
    instance: Instance,
    timeout: float | None,
    args: Mapping[str, Any] | None = None,
) -> Any:
    """`method` of `instance`'s actor on `host`, with the instance as the first argument."""
    return await caller.call(
        host,
        method,
        {"instance": instance, **(args or {})},
        instance=instance.uuid,
        timeout=timeout,
    )


class HostDriverCalls:
    """The host-scoped driver methods, and the instance-scoped ones it inherits."""

    async def get_available_resource(self: Caller, host: str, nodename: str) -> ComputeNode:
        node = await self.call(host, "get_available_resource", {"nodename": nodename})
        return cast(ComputeNode, node)

    async def get_available_nodes(self: Caller, host: str, refresh: bool = False) -> list[str]:
        return cast(list[str], await self.call(host, "get_available_nodes", {"refresh": refresh}))

    async def get_host_uptime(self: Caller, host: str) -> float:
        return cast(float, await self.call(host, "get_host_uptime"))

    async def get_host_ip_addr(self: Caller, host: str) -> str | None:
        return cast("str | None", await self.call(host, "get_host_ip_addr"))

    async def set_host_enabled(self: Caller, host: str, enabled: bool) -> str:
        return cast(str, await self.call(host, "set_host_enabled", {"enabled": enabled}))

    async def host_maintenance_mode(self: Caller, host: str, mode: bool) -> str:
        args = {"host": host, "mode": mode}
        return cast(str, await self.call(host, "host_maintenance_mode", args))

    async def list_instances(self: Caller, host: str) -> list[str]:
        return cast(list[str], await self.call(host, "list_instances"))

    async def list_instance_uuids(self: Caller, host: str) -> list[str]:
        return cast(list[str], await self.call(host, "list_instance_uuids"))

    async def instance_exists(self: Caller, host: str, uuid: str) -> bool:
        return cast(bool, await self.call(host, "instance_exists", {"uuid": uuid}))

    async def get_info(
        self: Caller,
        host: str,
        uuid: str | None = None,
        *,
        instance: Instance | None = None,
        timeout: float | None = None,
    ) -> InstanceInfo:
        """By `uuid`: the host answers for any domain it has. By `instance`: its actor does."""
        if instance is not None:
            return cast(InstanceInfo, await on_instance(self, host, "get_info", instance, timeout))
        if uuid is None:
            raise TypeError("get_info needs a uuid or an instance")
        return cast(InstanceInfo, await self.call(host, "get_info", {"uuid": uuid}))

    async def get_per_instance_usage(self: Caller, host: str) -> dict[str, InstanceInfo]:
        usage = await self.call(host, "get_per_instance_usage")
        return cast(dict[str, InstanceInfo], usage)

    async def get_all_bw_counters(
        self: Caller, host: str, instance_uuids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        args = {"instance_uuids": instance_uuids}
        return cast(list[dict[str, Any]], await self.call(host, "get_all_bw_counters", args))

    async def get_all_volume_usage(
        self: Caller, host: str, instance_uuids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        args = {"instance_uuids": instance_uuids}
        return cast(list[dict[str, Any]], await self.call(host, "get_all_volume_usage", args))
