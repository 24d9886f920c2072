"""Which request the running code works for: the request context a log line names.

Two places know it. Inside an actor's handler (and in the blocking calls it runs: the
executor copies contextvars into its thread) it is the handled message's context
(`actors.current_context()`); the dispatcher hands it to the actor with the message. Around
that, while a request server decodes, refuses, dedups and answers a request, and in the
conductor, whose methods run in the server's own task, it is the one `serving()` sets here.

Actors' tasks start from an empty context (`ActorSystem._start_task`), so a request bound
here never leaks into a later message's handler.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from actors import current_context

_serving: ContextVar[Any] = ContextVar("virtactor_serving_request", default=None)


def serving(context: Any) -> Token[Any]:
    """Bind `context` (a `RequestContext`, or whatever the request carried) to the running
    task until `done(token)`."""
    return _serving.set(context)


def done(token: Token[Any]) -> None:
    _serving.reset(token)


def request_context() -> Any:
    """The request context the running code works for, or None (a timer, start-up)."""
    context = current_context()
    return context if context is not None else _serving.get()
