# mypy: disable-error-code="empty-body"
# (the bodies never run: `driver_call` makes each declared signature its call)
"""Typed coroutines for the host-scoped driver methods (see `agent.driver_calls`)."""

from __future__ import annotations

from typing import Any, cast

from agent.driver_calls.caller import Caller, driver_call
from schemas.objects import ComputeNode, Instance, InstanceInfo


class HostDriverCalls:
    """The methods of an agent's host actor (and `get_info`, which instance actors serve too)."""

    @driver_call
    async def get_available_resource(
        self,
        host: str,
        nodename: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> ComputeNode: ...

    @driver_call
    async def get_available_nodes(
        self,
        host: str,
        refresh: bool = False,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]: ...

    @driver_call
    async def get_host_uptime(
        self,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> float:
        """Seconds since the hypervisor host booted."""

    @driver_call
    async def get_host_ip_addr(
        self,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str | None: ...

    @driver_call
    async def set_host_enabled(
        self,
        host: str,
        enabled: bool,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str: ...

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
        result = await self.call(
            host, "host_maintenance_mode", args, timeout=rpc_timeout, message_id=message_id
        )
        return cast(str, result)

    @driver_call
    async def list_instances(
        self,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]:
        """The names of every domain, running or not."""

    @driver_call
    async def list_instance_uuids(
        self,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[str]: ...

    @driver_call
    async def instance_exists(
        self,
        host: str,
        uuid: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> bool: ...

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
        if instance is not None and uuid is not None:
            raise TypeError("get_info takes a uuid or an instance, not both")
        if instance is not None:
            args: dict[str, Any] = {"instance": instance}
            target: str | None = instance.uuid
        elif uuid is not None:
            args, target = {"uuid": uuid}, None
        else:
            raise TypeError(
                "get_info needs a uuid (the host answers) or an instance (its actor answers)"
            )
        info = await self.call(
            host, "get_info", args, instance=target, timeout=rpc_timeout, message_id=message_id
        )
        return cast(InstanceInfo, info)

    @driver_call
    async def get_per_instance_usage(
        self,
        host: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> dict[str, InstanceInfo]: ...

    @driver_call
    async def get_all_bw_counters(
        self,
        host: str,
        instance_uuids: list[str] | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[dict[str, Any]]: ...

    @driver_call
    async def get_all_volume_usage(
        self,
        host: str,
        instance_uuids: list[str] | None = None,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[dict[str, Any]]: ...
