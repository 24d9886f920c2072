"""Typed coroutines for the host-scoped driver methods (see `agent.driver_calls`)."""

from __future__ import annotations

from typing import Any, cast

from agent.driver_calls.caller import Caller, on_host, on_instance
from schemas.objects import ComputeNode, Instance, InstanceInfo


class HostDriverCalls:
    """The methods of an agent's host actor (and `get_info`, which instance actors serve too)."""

    async def get_available_resource(
        self: Caller,
        host: str,
        nodename: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> ComputeNode:
        args = {"nodename": nodename}
        node = await on_host(self, host, "get_available_resource", rpc_timeout, message_id, args)
        return cast(ComputeNode, node)

    async def get_available_nodes(
        self: Caller,
        host: str,
        refresh: bool = False,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]:
        args = {"refresh": refresh}
        nodes = await on_host(self, host, "get_available_nodes", rpc_timeout, message_id, args)
        return cast(list[str], nodes)

    async def get_host_uptime(
        self: Caller,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> float:
        """Seconds since the hypervisor host booted."""
        return cast(float, await on_host(self, host, "get_host_uptime", rpc_timeout, message_id))

    async def get_host_ip_addr(
        self: Caller,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str | None:
        address = await on_host(self, host, "get_host_ip_addr", rpc_timeout, message_id)
        return cast("str | None", address)

    async def set_host_enabled(
        self: Caller,
        host: str,
        enabled: bool,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        args = {"enabled": enabled}
        return cast(
            str, await on_host(self, host, "set_host_enabled", rpc_timeout, message_id, args)
        )

    async def host_maintenance_mode(
        self: Caller,
        host: str,
        mode: bool,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        """The driver method's `host` argument is the host asked."""
        args = {"host": host, "mode": mode}
        method = "host_maintenance_mode"
        return cast(str, await on_host(self, host, method, rpc_timeout, message_id, args))

    async def list_instances(
        self: Caller,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]:
        """The names of every domain, running or not."""
        names = await on_host(self, host, "list_instances", rpc_timeout, message_id)
        return cast(list[str], names)

    async def list_instance_uuids(
        self: Caller,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]:
        uuids = await on_host(self, host, "list_instance_uuids", rpc_timeout, message_id)
        return cast(list[str], uuids)

    async def instance_exists(
        self: Caller,
        host: str,
        uuid: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> bool:
        args = {"uuid": uuid}
        return cast(
            bool, await on_host(self, host, "instance_exists", rpc_timeout, message_id, args)
        )

    async def get_info(
        self: Caller,
        host: str,
        uuid: str | None = None,
        *,
        instance: Instance | None = None,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> InstanceInfo:
        """By `uuid`: the host answers for any domain it has. By `instance`: its actor does.
        Raises `TypeError` unless exactly one of the two is given."""
        if instance is not None:
            if uuid is not None:
                raise TypeError("get_info takes a uuid or an instance, not both")
            info = await on_instance(self, host, "get_info", instance, rpc_timeout, message_id)
        elif uuid is None:
            raise TypeError(
                "get_info needs a uuid (the host answers) or an instance (its actor answers)"
            )
        else:
            args = {"uuid": uuid}
            info = await on_host(self, host, "get_info", rpc_timeout, message_id, args)
        return cast(InstanceInfo, info)

    async def get_per_instance_usage(
        self: Caller,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> dict[str, InstanceInfo]:
        usage = await on_host(self, host, "get_per_instance_usage", rpc_timeout, message_id)
        return cast(dict[str, InstanceInfo], usage)

    async def get_all_bw_counters(
        self: Caller,
        host: str,
        instance_uuids: list[str] | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[dict[str, Any]]:
        args = {"instance_uuids": instance_uuids}
        counters = await on_host(self, host, "get_all_bw_counters", rpc_timeout, message_id, args)
        return cast(list[dict[str, Any]], counters)

    async def get_all_volume_usage(
        self: Caller,
        host: str,
        instance_uuids: list[str] | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[dict[str, Any]]:
        args = {"instance_uuids": instance_uuids}
        usage = await on_host(self, host, "get_all_volume_usage", rpc_timeout, message_id, args)
        return cast(list[dict[str, Any]], usage)
