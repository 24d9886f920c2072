"""What the typed calls need of the client, and `driver_call`, which makes a declared
signature the call."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# The client's own parameters of every typed call, never sent as driver arguments.
TARGET = "host"
OPTIONS = ("rpc_timeout", "message_id")
ADDRESS = "uuid"  # keyword-only: the instance of a method that takes no `instance`


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


def driver_call(declaration: F) -> F:
    """The typed call of the driver method named as `declaration`, whose signature (its body
    never runs) says everything: `host` is the agent asked; `rpc_timeout` and `message_id`
    are the call's options; every other parameter is sent under its own name, its default
    when not given. The call goes to the actor of the `instance` argument's uuid, or of a
    keyword-only `uuid`, or else to the host actor."""
    signature = inspect.signature(declaration)
    method = declaration.__name__
    addressed = ADDRESS in signature.parameters and (
        signature.parameters[ADDRESS].kind is inspect.Parameter.KEYWORD_ONLY
    )

    @functools.wraps(declaration)
    async def call(self: Caller, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        del arguments["self"]
        host = arguments.pop(TARGET)
        rpc_timeout, message_id = (arguments.pop(option) for option in OPTIONS)
        uuid = arguments.pop(ADDRESS) if addressed else None
        if "instance" in arguments:
            uuid = arguments["instance"].uuid
        return await self.call(
            host, method, arguments, instance=uuid, timeout=rpc_timeout, message_id=message_id
        )

    return cast(F, call)
