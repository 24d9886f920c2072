"""W3C trace context (https://www.w3.org/TR/trace-context/): the trace a request runs in.

    traceparent = "00-" trace-id (32 hex) "-" parent-id (16 hex) "-" flags (2 hex)
    tracestate  = vendor entries, passed on unchanged

A `TraceParent` travels in the message's headers (`traceparent`, and `tracestate` when it
has one), never in the versioned objects: an AMQP header on the broker's message, the same
map on the in-process bus's. Which trace the running code works in (`current_trace()`):

- a trace bound here with `bind_trace` (the request server binds the incoming one while it
  serves a request; a control plane may bind the trace of the request it serves itself);
- else the one the request context the code works for carries (`RequestContext.obj_trace`,
  set by the server that decoded it): inside an actor's handler, the handled message's.

A client continues it: each call or cast it sends carries the current trace under a new
span id (the client span's, when spans are on: `agent.observability.spans`), or starts a
new trace when there is none. This module needs no tracing library: reading the current
trace is two contextvar reads, and a new span id one `os.urandom`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from agent.observability.requests import request_context

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_FORM = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = "01"
# The spec allows 32 list members of at most 256 characters each, comma-separated.
_MAX_TRACESTATE = 32 * 257


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One `traceparent`: the trace, the calling span in it, the trace flags, and the
    `tracestate` that came with it ("" for none)."""

    trace_id: str
    span_id: str
    flags: str = SAMPLED
    state: str = ""

    @classmethod
    def parse(cls, text: object, state: object = None) -> TraceParent | None:
        """The value `text` carries, or None when it is none (absent, malformed, version
        ff, an all-zero id): a receiver then starts a trace of its own, as the spec says.
        `state` is the `tracestate` that came with it, kept when it is text of sane size."""
        if isinstance(text, bytes):  # an AMQP long string may arrive undecoded
            text = text.decode("ascii", "replace")
        if not isinstance(text, str):
            return None
        form = _FORM.match(text)
        if form is None or form[1] == "ff":
            return None
        if form[1] == "00" and len(text) != 55:
            return None  # version 00 has nothing after the flags
        if form[2] == _ZERO_TRACE or form[3] == _ZERO_SPAN:
            return None
        if isinstance(state, bytes):
            state = state.decode("ascii", "replace")
        kept = state if isinstance(state, str) and len(state) <= _MAX_TRACESTATE else ""
        return cls(form[2], form[3], form[4], kept)

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any] | None) -> TraceParent | None:
        """The trace a message's headers carry, or None."""
        if not headers:
            return None
        return cls.parse(headers.get(TRACEPARENT), headers.get(TRACESTATE))

    @classmethod
    def new(cls) -> TraceParent:
        """The start of a new trace, sampled."""
        ids = os.urandom(24).hex()
        return cls(ids[:32], ids[32:])

    def child(self) -> TraceParent:
        """The same trace, under a new span id: what a caller with no span of its own
        passes on."""
        return TraceParent(self.trace_id, os.urandom(8).hex(), self.flags, self.state)

    def headers(self) -> dict[str, str]:
        """The message headers that carry this trace."""
        if self.state:
            return {TRACEPARENT: str(self), TRACESTATE: self.state}
        return {TRACEPARENT: str(self)}

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


_bound: ContextVar[TraceParent | None] = ContextVar("virtactor_trace", default=None)


def bind_trace(trace: TraceParent | None) -> Token[TraceParent | None]:
    """Make `trace` the running task's current trace until `unbind_trace(token)`."""
    return _bound.set(trace)


def unbind_trace(token: Token[TraceParent | None]) -> None:
    _bound.reset(token)


def trace_of(context: Any) -> TraceParent | None:
    """The trace a request context carries (`obj_trace`), or None (none attached, or not a
    request context)."""
    trace = getattr(context, "obj_trace", None)
    return trace if isinstance(trace, TraceParent) else None


def current_trace() -> TraceParent | None:
    """The trace the running code works in (see the module docstring), or None."""
    trace = _bound.get()
    return trace if trace is not None else trace_of(request_context())


def outgoing_trace() -> TraceParent:
    """What a request sent now carries when no span is open for it: the current trace
    under a new span id, or a new trace."""
    trace = current_trace()
    return TraceParent.new() if trace is None else trace.child()


def trace_id_of(context: Any) -> str | None:
    """The trace id of the trace a request context carries, or None."""
    trace = trace_of(context)
    return None if trace is None else trace.trace_id
