"""`driver_method`: one ComputeDriver method, declared once, by its handler.

The decorator makes an instance actor method the handler of the message of its own name and
names it, while it runs, for the state checks and errors of the operation
(`running_method()`, `InstanceCore.method`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

from actors.handlers import handler

# The driver method running in this actor's task: errors and state checks name it, so no
# handler types its own name again. A ContextVar, not an attribute, because handlers call
# each other (resume_state_on_host_boot runs a hard reboot) and each call sees its own.
_RUNNING_METHOD: ContextVar[str] = ContextVar("virtactor_instance_method")

DriverMethod = TypeVar("DriverMethod", bound=Callable[..., Coroutine[Any, Any, Any]])


def driver_method(function: DriverMethod) -> DriverMethod:
    """Declare an instance actor method as the handler of the ComputeDriver method of the
    same name (`@handler`), and name it, while it runs, as `self.method` (what its errors
    and state checks say). The signature stays the function's own: it is what callers see."""
    name = function.__name__

    @functools.wraps(function)
    async def run(self: Any, /, *args: Any, **kwargs: Any) -> Any:
        token = _RUNNING_METHOD.set(name)
        try:
            return await function(self, *args, **kwargs)
        finally:
            _RUNNING_METHOD.reset(token)

    return handler(run)  # type: ignore[return-value]  # wraps keeps the signature


def running_method() -> str:
    """The driver method running in this task; LookupError outside any."""
    return _RUNNING_METHOD.get()
