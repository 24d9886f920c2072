"""The message an actor receives, and the accessor for the one being handled."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

NO_ARGS: Mapping[str, Any] = MappingProxyType({})

_current_message: ContextVar[Message | None] = ContextVar("virtactor_current_message", default=None)


@dataclass(slots=True)
class Message:
    """One request to an actor.

    `args` are the handler's keyword arguments. `deadline` is an absolute `time.monotonic()`
    time: a message still queued at its deadline is skipped, never started. `context` is the
    caller's request context (request id, user, ...), opaque to the runtime. `reply` is the
    future an `ask` waits on; it is None for a `tell`.
    """

    method: str
    args: Mapping[str, Any]
    deadline: float | None = None
    context: Any = None
    reply: asyncio.Future[Any] | None = None


def current_message() -> Message | None:
    """The message whose handler is running in this task, or None outside a handler.

    Handlers and log formatters read the request context from it (`current_message().context`).
    """
    return _current_message.get()


def current_context() -> Any:
    """The request context of the message being handled, or None outside a handler."""
    message = _current_message.get()
    return None if message is None else message.context
