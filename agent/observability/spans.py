"""Spans: what the request server and the client record of each request, when configured.

`NO_SPANS`, the default, records nothing and imports nothing: code on a request's path
checks `spans.enabled` (one attribute read) and passes the trace on without a span. With
`[tracing] exporter` set, `spans_from_config` builds `OtelSpans` (agent/observability/otel.py,
which alone imports OpenTelemetry), and then:

- the request server opens a server span per request, child of the incoming traceparent
  (or the root of a new trace), and the request is served in the span's trace;
- the client opens a client span per call, cast or fanout, child of the current trace
  (agent/observability/tracing.py), and the request carries the span's traceparent.

Each agent builds its own (`Agent.spans`) and closes it (`aclose`, which flushes what the
exporter still holds): nothing is registered globally, so two agents in one process keep
their spans apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from agent.observability.tracing import TraceParent

if TYPE_CHECKING:
    from agent.config import TracingSection

# The `rpc.system` attribute of every span.
RPC_SYSTEM = "virtactor"


class Span(Protocol):
    """One open span. `trace` is what the request it stands for carries: the span's own
    trace id and span id."""

    @property
    def trace(self) -> TraceParent: ...

    def rename(self, name: str) -> None:
        """Name the span after what it turned out to serve (the method, once decoded)."""

    def set_attribute(self, key: str, value: str | int | float | bool) -> None: ...

    def failed(self, reason: str) -> None:
        """Mark the span's outcome an error, with `reason`."""

    def end(self) -> None:
        """Close the span; it goes to the exporter. Idempotent."""


class Spans:
    """No spans (the default): `enabled` is False and nothing is recorded. Callers check
    `enabled` before asking for a span; asking anyway is a bug, raised as such."""

    enabled = False

    def server(self, name: str, parent: TraceParent | None, attributes: Mapping[str, Any]) -> Span:
        """Open a server span for a request received with `parent` (None: a new trace)."""
        raise RuntimeError("spans are off: check `enabled` first")

    def client(self, name: str, parent: TraceParent | None, attributes: Mapping[str, Any]) -> Span:
        """Open a client span for a request sent in trace `parent` (None: a new trace)."""
        raise RuntimeError("spans are off: check `enabled` first")

    async def aclose(self) -> None:
        """Flush what was recorded and stop; nothing to do here."""


NO_SPANS = Spans()


def spans_from_config(section: TracingSection) -> Spans:
    """`NO_SPANS` for `exporter = "none"`, else spans exported as `section` says. The
    section was checked when the configuration was loaded (the packages are there)."""
    if section.exporter == "none":
        return NO_SPANS
    from agent.observability.otel import OtelSpans  # only now: OpenTelemetry is configured

    return OtelSpans.from_section(section)
