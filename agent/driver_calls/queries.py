"""Typed coroutines that read an instance or reach into its guest (see `agent.driver_calls`)."""

from __future__ import annotations

from typing import cast

from agent.driver_calls.caller import Caller
from agent.driver_calls.caller import on_instance as _on  # short: it is on every line below
from schemas.objects import ConsoleInfo, Diagnostics, Instance, NetworkInfo


class InstanceQueryCalls:
    """Diagnostics, counters, consoles, metadata, and the guest agent's verbs."""

    async def get_diagnostics(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Diagnostics:
        result = await _on(self, host, "get_diagnostics", instance, rpc_timeout, message_id)
        return cast(Diagnostics, result)

    async def block_stats(
        self: Caller,
        host: str,
        instance: Instance,
        disk_id: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[int]:
        args = {"disk_id": disk_id}
        stats = await _on(self, host, "block_stats", instance, rpc_timeout, message_id, args)
        return cast(list[int], stats)

    async def interface_stats(
        self: Caller,
        host: str,
        instance: Instance,
        iface_id: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[int]:
        args = {"iface_id": iface_id}
        stats = await _on(self, host, "interface_stats", instance, rpc_timeout, message_id, args)
        return cast(list[int], stats)

    async def get_console_output(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        """The serial log's tail."""
        output = await _on(self, host, "get_console_output", instance, rpc_timeout, message_id)
        return cast(str, output)

    async def get_vnc_console(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> ConsoleInfo:
        console = await _on(self, host, "get_vnc_console", instance, rpc_timeout, message_id)
        return cast(ConsoleInfo, console)

    async def get_serial_console(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> ConsoleInfo:
        console = await _on(self, host, "get_serial_console", instance, rpc_timeout, message_id)
        return cast(ConsoleInfo, console)

    async def change_instance_metadata(
        self: Caller,
        host: str,
        instance: Instance,
        diff: dict[str, list[str]],
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        """`diff` maps a key to `['+', value]` (set it) or `['-']` (remove it)."""
        args = {"diff": diff}
        method = "change_instance_metadata"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def set_admin_password(
        self: Caller,
        host: str,
        instance: Instance,
        new_pass: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None:
        args = {"new_pass": new_pass}
        await _on(self, host, "set_admin_password", instance, rpc_timeout, message_id, args)

    async def inject_file(
        self: Caller,
        host: str,
        instance: Instance,
        path: str,
        contents: bytes,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None:
        args = {"path": path, "contents": contents}
        await _on(self, host, "inject_file", instance, rpc_timeout, message_id, args)

    async def inject_network_info(
        self: Caller,
        host: str,
        instance: Instance,
        network_info: NetworkInfo,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        args = {"network_info": network_info}
        method = "inject_network_info"
        return cast(
            Instance, await _on(self, host, method, instance, rpc_timeout, message_id, args)
        )

    async def reset_network(
        self: Caller,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None:
        await _on(self, host, "reset_network", instance, rpc_timeout, message_id)
