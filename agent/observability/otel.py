"""`OtelSpans`: spans recorded with the OpenTelemetry SDK (the `tracing` extra).

Imported only when `[tracing] exporter` names an exporter (`spans_from_config`). Each
`OtelSpans` has a `TracerProvider` of its own, never the global one, and reads no
OpenTelemetry context: a span's parent is the `TraceParent` it is given, so the trace
follows virtactor's own carrier (agent/observability/tracing.py) across tasks and actors.

Exporters run off the event loop: `BatchSpanProcessor` hands finished spans to its own
thread, which writes them to the console or posts them to the OTLP/HTTP endpoint; ending a
span only queues it. `aclose` flushes and stops that thread in a worker thread.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as otel_trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags, TraceState

from agent.observability.spans import RPC_SYSTEM, Spans
from agent.observability.tracing import TraceParent

if TYPE_CHECKING:
    from agent.config import TracingSection

# Where an OTLP/HTTP collector listens by default (the OpenTelemetry Collector's port).
DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318/v1/traces"
# How long `aclose` waits for the last spans to be exported.
SHUTDOWN_TIMEOUT = 10.0


def exporter_for(section: TracingSection) -> SpanExporter:
    """The exporter `section.exporter` names ("console" or "otlp")."""
    if section.exporter == "console":
        return ConsoleSpanExporter(out=sys.stderr)  # stdout is a command's output
    if section.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=section.endpoint or DEFAULT_OTLP_ENDPOINT)
    raise ValueError(f"[tracing] exporter {section.exporter!r} exports nothing")


class OtelSpan:
    """One OpenTelemetry span; see `agent.observability.spans.Span`."""

    __slots__ = ("_span", "trace")

    def __init__(self, span: otel_trace.Span, state: str) -> None:
        self._span = span
        context = span.get_span_context()
        self.trace = TraceParent(
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
            f"{int(context.trace_flags):02x}",
            state,
        )

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def failed(self, reason: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, reason))

    def end(self) -> None:
        if self._span.is_recording():
            self._span.end()


class OtelSpans(Spans):
    """Spans of one service, exported by `exporter` (batched in a thread of its own, or
    with `batch=False` as each span ends: for an in-memory exporter in tests)."""

    enabled = True

    def __init__(self, exporter: SpanExporter, service_name: str, *, batch: bool = True) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("virtactor")

    @classmethod
    def from_section(cls, section: TracingSection) -> OtelSpans:
        return cls(exporter_for(section), section.service_name)

    def server(
        self, name: str, parent: TraceParent | None, attributes: Mapping[str, Any]
    ) -> OtelSpan:
        return self._start(name, SpanKind.SERVER, parent, attributes)

    def client(
        self, name: str, parent: TraceParent | None, attributes: Mapping[str, Any]
    ) -> OtelSpan:
        return self._start(name, SpanKind.CLIENT, parent, attributes)

    def _start(
        self, name: str, kind: SpanKind, parent: TraceParent | None, attributes: Mapping[str, Any]
    ) -> OtelSpan:
        span = self._tracer.start_span(
            name,
            context=_context_of(parent),
            kind=kind,
            attributes={"rpc.system": RPC_SYSTEM, **attributes},
        )
        return OtelSpan(span, "" if parent is None else parent.state)

    async def aclose(self) -> None:
        """Export what is still queued (up to `SHUTDOWN_TIMEOUT`) and stop the exporter's
        thread; the flush runs in a worker thread, never on the loop."""
        async with asyncio.timeout(SHUTDOWN_TIMEOUT):
            await asyncio.to_thread(self.provider.shutdown)


def _context_of(parent: TraceParent | None) -> Context:
    """The OpenTelemetry context whose span is `parent`, received from another process; an
    empty one (a new trace) for None, whatever OpenTelemetry context the task has."""
    if parent is None:
        return Context()
    span_context = otel_trace.SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(int(parent.flags, 16)),
        trace_state=TraceState.from_header([parent.state]) if parent.state else None,
    )
    return otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(span_context), Context())
