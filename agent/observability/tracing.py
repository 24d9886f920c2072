"""W3C trace context (https://www.w3.org/TR/trace-context/): the `traceparent` value.

    traceparent = "00-" trace-id (32 hex) "-" parent-id (16 hex) "-" flags (2 hex)

This module parses, makes and continues such values; it needs no tracing library, so
reading one costs an attribute read and nothing is allocated while tracing is off. Where
the value travels (a `traceparent` on the request context) and the span hooks are described
in docs/observability.md, "Tracing".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

_FORM = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = "01"


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One `traceparent`: the trace, the calling span in it, and the trace flags."""

    trace_id: str
    span_id: str
    flags: str = SAMPLED

    @classmethod
    def parse(cls, text: object) -> TraceParent | None:
        """The value `text` carries, or None when it is none (absent, malformed, version
        ff, an all-zero id): a receiver then starts a trace of its own, as the spec says."""
        if not isinstance(text, str):
            return None
        form = _FORM.match(text)
        if form is None or form[1] == "ff":
            return None
        if form[1] == "00" and len(text) != 55:
            return None  # version 00 has nothing after the flags
        if form[2] == _ZERO_TRACE or form[3] == _ZERO_SPAN:
            return None
        return cls(form[2], form[3], form[4])

    @classmethod
    def new(cls) -> TraceParent:
        """The start of a new trace, sampled."""
        return cls(os.urandom(16).hex(), os.urandom(8).hex())

    def child(self) -> TraceParent:
        """The same trace, under a new span id: what a span started here passes on."""
        return TraceParent(self.trace_id, os.urandom(8).hex(), self.flags)

    def __str__(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def trace_id_of(context: Any) -> str | None:
    """The trace id of the `traceparent` a request context carries, or None (a context
    without one, or of a release that has no such field)."""
    value = getattr(context, "traceparent", None)
    if value is None:
        return None
    parsed = TraceParent.parse(value)
    return None if parsed is None else parsed.trace_id
