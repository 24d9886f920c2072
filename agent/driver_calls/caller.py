"""What the typed calls need of the client, and the two ways they address a call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from schemas.objects import Instance


class Caller(Protocol):
    """The client's generic `call` (see `ComputeClient.call`)."""

    async def call(
        self,
        host: str,
        method: str,
        args: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        timeout: float | None = None,
        message_id: str | None = None,
    ) -> Any: ...


async def on_host(
    caller: Caller,
    host: str,
    method: str,
    rpc_timeout: float | None,
    message_id: str | None,
    args: Mapping[str, Any] | None = None,
) -> Any:
    """`method` of `host`'s host actor."""
    return await caller.call(host, method, args, timeout=rpc_timeout, message_id=message_id)


async def on_instance(
    caller: Caller,
    host: str,
    method: str,
    instance: Instance,
    rpc_timeout: float | None,
    message_id: str | None,
    args: Mapping[str, Any] | None = None,
) -> Any:
    """`method` of `instance`'s actor on `host`, with the instance as its first argument."""
    return await caller.call(
        host,
        method,
        {"instance": instance, **(args or {})},
        instance=instance.uuid,
        timeout=rpc_timeout,
        message_id=message_id,
    )
