# mypy: disable-error-code="empty-body"
# (the bodies never run: `driver_call` makes each declared signature its call)
"""Typed coroutines that read an instance or reach into its guest (see `agent.driver_calls`)."""

from __future__ import annotations

from agent.driver_calls.caller import driver_call
from schemas.objects import ConsoleInfo, Diagnostics, Instance, NetworkInfo


class InstanceQueryCalls:
    """Diagnostics, counters, consoles, metadata, and the guest agent's verbs."""

    @driver_call
    async def get_diagnostics(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Diagnostics: ...

    @driver_call
    async def block_stats(
        self,
        host: str,
        instance: Instance,
        disk_id: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[int]: ...

    @driver_call
    async def interface_stats(
        self,
        host: str,
        instance: Instance,
        iface_id: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> list[int]: ...

    @driver_call
    async def get_console_output(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> str:
        """The serial log's tail."""

    @driver_call
    async def get_vnc_console(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> ConsoleInfo: ...

    @driver_call
    async def get_serial_console(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> ConsoleInfo: ...

    @driver_call
    async def change_instance_metadata(
        self,
        host: str,
        instance: Instance,
        diff: dict[str, list[str]],
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance:
        """`diff` maps a key to `['+', value]` (set it) or `['-']` (remove it)."""

    @driver_call
    async def set_admin_password(
        self,
        host: str,
        instance: Instance,
        new_pass: str,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None: ...

    @driver_call
    async def inject_file(
        self,
        host: str,
        instance: Instance,
        path: str,
        contents: bytes,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None: ...

    @driver_call
    async def inject_network_info(
        self,
        host: str,
        instance: Instance,
        network_info: NetworkInfo,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> Instance: ...

    @driver_call
    async def reset_network(
        self,
        host: str,
        instance: Instance,
        *,
        rpc_timeout: float | None = None,
        message_id: str | None = None,
    ) -> None: ...
