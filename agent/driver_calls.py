"""Typed coroutines for the driver methods, one per ComputeDriver method the agent serves.

`ComputeClient` inherits these; each is a thin, typed call of the generic `call`, named and
argued exactly as the driver method (see the catalogue in `agent.rpc.catalogue`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from schemas.objects import ComputeNode, InstanceInfo


class _Caller(Protocol):
    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
    ) -> Any: ...


class DriverCalls:
    """The host-scoped driver methods."""

    async def get_available_resource(self: _Caller, host: str, nodename: str) -> ComputeNode:
        node = await self.call(host, "get_available_resource", {"nodename": nodename})
        return cast(ComputeNode, node)

    async def get_available_nodes(self: _Caller, host: str, refresh: bool = False) -> list[str]:
        return cast(list[str], await self.call(host, "get_available_nodes", {"refresh": refresh}))

    async def get_host_uptime(self: _Caller, host: str) -> float:
        return cast(float, await self.call(host, "get_host_uptime"))

    async def get_host_ip_addr(self: _Caller, host: str) -> str | None:
        return cast("str | None", await self.call(host, "get_host_ip_addr"))

    async def set_host_enabled(self: _Caller, host: str, enabled: bool) -> str:
        return cast(str, await self.call(host, "set_host_enabled", {"enabled": enabled}))

    async def host_maintenance_mode(self: _Caller, host: str, mode: bool) -> str:
        args = {"host": host, "mode": mode}
        return cast(str, await self.call(host, "host_maintenance_mode", args))

    async def list_instances(self: _Caller, host: str) -> list[str]:
        return cast(list[str], await self.call(host, "list_instances"))

    async def list_instance_uuids(self: _Caller, host: str) -> list[str]:
        return cast(list[str], await self.call(host, "list_instance_uuids"))

    async def instance_exists(self: _Caller, host: str, uuid: str) -> bool:
        return cast(bool, await self.call(host, "instance_exists", {"uuid": uuid}))

    async def get_info(self: _Caller, host: str, uuid: str) -> InstanceInfo:
        return cast(InstanceInfo, await self.call(host, "get_info", {"uuid": uuid}))

    async def get_per_instance_usage(self: _Caller, host: str) -> dict[str, InstanceInfo]:
        usage = await self.call(host, "get_per_instance_usage")
        return cast(dict[str, InstanceInfo], usage)

    async def get_all_bw_counters(
        self: _Caller, host: str, instance_uuids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        args = {"instance_uuids": instance_uuids}
        return cast(list[dict[str, Any]], await self.call(host, "get_all_bw_counters", args))

    async def get_all_volume_usage(
        self: _Caller, host: str, instance_uuids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        args = {"instance_uuids": instance_uuids}
        return cast(list[dict[str, Any]], await self.call(host, "get_all_volume_usage", args))
