"""Spans: recorded with their parent links when `[tracing]` names an exporter, and nothing of
OpenTelemetry loaded when it names none; the section checked at load like any other."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agent.client import ComputeClient
from agent.config import ConfigError, TracingSection, load_config
from agent.errors import UnknownMethod
from agent.observability.otel import OtelSpans
from agent.observability.spans import NO_SPANS, spans_from_config
from agent.observability.tracing import TraceParent, bind_trace, unbind_trace
from agent.transport import InProcessBus, Transport
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.embedded import domain_removed, embedded_agent, embedded_config, make_root_image
from tests.agent.relay import relay_host
from tests.conftest import on_session_loop

ROOT = Path(__file__).resolve().parents[2]


def hexed(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) in hex."""
    context = span.get_span_context()
    assert context is not None
    parent = None if span.parent is None else f"{span.parent.span_id:016x}"
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", parent


async def test_each_hop_is_a_span_whose_parent_is_the_hop_before(transport: Transport) -> None:
    exporter = InMemorySpanExporter()
    spans = OtelSpans(exporter, "relay", batch=False)
    incoming = TraceParent.new()
    token = bind_trace(incoming)  # the control plane's own request
    try:
        async with relay_host(transport, "h1", spans), relay_host(transport, "h2", spans):
            client = ComputeClient(
                transport, default_timeout=10, announce_interval=None, spans=spans, is_admin=True
            )
            answer = await client.call("h1", "relay", {"host": "h2"})
    finally:
        unbind_trace(token)
        await spans.aclose()

    finished = exporter.get_finished_spans()
    chain = [(span.name, span.kind) for span in sorted(finished, key=lambda s: s.start_time or 0)]
    assert chain == [
        ("relay", SpanKind.CLIENT),
        ("relay", SpanKind.SERVER),
        ("whoami", SpanKind.CLIENT),
        ("whoami", SpanKind.SERVER),
    ]
    called, served, peer_called, peer_served = sorted(finished, key=lambda s: s.start_time or 0)
    assert {hexed(span)[0] for span in finished} == {incoming.trace_id}
    assert hexed(called)[2] == incoming.span_id
    assert hexed(served)[2] == hexed(called)[1]
    assert hexed(peer_called)[2] == hexed(served)[1]
    assert hexed(peer_served)[2] == hexed(peer_called)[1]
    # The handlers ran in their server spans' traces.
    assert TraceParent.parse(answer["here"]) == TraceParent(*hexed(served)[:2])
    assert TraceParent.parse(answer["there"]) == TraceParent(*hexed(peer_served)[:2])
    assert served.attributes is not None and served.attributes["rpc.method"] == "relay"
    assert served.attributes["virtactor.rpc.outcome"] == "ok"
    assert served.status.status_code is StatusCode.UNSET


async def test_a_refused_request_ends_both_spans_as_errors() -> None:
    exporter = InMemorySpanExporter()
    spans = OtelSpans(exporter, "relay", batch=False)
    bus = InProcessBus()
    await bus.start()
    try:
        async with relay_host(bus, "h1", spans):
            client = ComputeClient(
                bus, default_timeout=10, announce_interval=None, spans=spans, is_admin=True
            )
            with pytest.raises(UnknownMethod, match="unknown method 'no_such_method'"):
                await client.call("h1", "no_such_method")
    finally:
        await bus.aclose()
        await spans.aclose()

    client_span, server_span = sorted(
        exporter.get_finished_spans(), key=lambda s: s.start_time or 0
    )
    assert (client_span.kind, server_span.kind) == (SpanKind.CLIENT, SpanKind.SERVER)
    assert client_span.status.status_code is StatusCode.ERROR
    assert client_span.status.description == "UnknownMethod: unknown method 'no_such_method'"
    assert server_span.status.status_code is StatusCode.ERROR
    assert server_span.attributes is not None
    assert server_span.attributes["virtactor.rpc.outcome"] == "UnknownMethod"


@on_session_loop
async def test_an_agent_with_the_console_exporter_writes_its_server_spans_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await make_root_image(tmp_path)
    config = dataclasses.replace(
        embedded_config(tmp_path, "trc-console"), tracing=TracingSection(exporter="console")
    )
    guest = instance(str(uuid.uuid4()), name=f"trc-{uuid.uuid4().hex[:8]}")
    async with domain_removed(guest.uuid), embedded_agent(config) as (agent, client):
        assert isinstance(agent.spans, OtelSpans)
        await client.spawn("trc-console", guest, image_meta())
        await client.get_info("trc-console", guest)
    # The agent closed: the exporter's thread flushed its spans.
    written = capsys.readouterr().err
    served = [json.loads(block) for block in _json_objects(written)]
    assert {"spawn", "get_info"} <= {span["name"] for span in served}
    assert {span["kind"] for span in served if span["name"] == "get_info"} == {"SpanKind.SERVER"}
    # The embedded conductor serves the spawn's record saves in the spawn's own trace.
    (spawn,) = [s for s in served if s["name"] == "spawn" and s["kind"] == "SpanKind.SERVER"]
    saves = [s for s in served if s["name"] in ("object_action", "object_class_action")]
    assert any(s["kind"] == "SpanKind.SERVER" for s in saves), {s["name"] for s in served}
    in_spawn = {s["context"]["trace_id"] for s in saves} & {spawn["context"]["trace_id"]}
    assert in_spawn, "no save of the spawn's record was served in the spawn's trace"


def _json_objects(text: str) -> list[str]:
    """The top-level JSON objects the console exporter wrote one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(text, start)
        except json.JSONDecodeError:  # a brace in some other line
            at = start + 1
            continue
        found.append(json.dumps(value))
    return found


# --- off by default -------------------------------------------------------------------------


def test_with_tracing_off_an_agent_serving_requests_imports_no_opentelemetry(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from tests.actors.instance.fakes import image_meta
        from tests.agent.embedded import embedded_guest

        async def main():
            async with embedded_guest(Path({str(tmp_path)!r}), "trc-off", image_meta()) as g:
                await g.client.get_info("trc-off", g.guest)
                assert g.client.spans.enabled is False

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_tracing_is_off_unless_configured() -> None:
    config = load_config(None, environ={})

    assert config.tracing == TracingSection(exporter="none", endpoint="", service_name="virtactor")
    assert spans_from_config(config.tracing) is NO_SPANS


# --- the section, checked at load -----------------------------------------------------------


async def test_an_exporter_named_in_the_file_or_environment_builds_spans(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[tracing]\nexporter = "otlp"\nendpoint = "http://collector:4318/v1/traces"\n'
        'service_name = "agent-7"\n'
    )
    config = load_config(path, environ={})
    from_env = load_config(None, environ={"VIRTACTOR_TRACING_EXPORTER": "console"})

    assert config.tracing == TracingSection("otlp", "http://collector:4318/v1/traces", "agent-7")
    assert from_env.tracing.exporter == "console"
    spans = spans_from_config(config.tracing)
    try:
        assert isinstance(spans, OtelSpans) and spans.enabled
        resource = spans.provider.resource.attributes
        assert resource["service.name"] == "agent-7"
    finally:
        await spans.aclose()


def test_tracing_values_are_checked_at_load(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[tracing]\nexporter = "zipkin"\nendpoint = "collector:4318"\nservice_name = ""\n'
    )

    with pytest.raises(ConfigError) as refused:
        load_config(path, environ={})

    assert refused.value.problems == (
        f"configuration {path} [tracing] exporter: 'zipkin' is not one of none, console, otlp",
        f"configuration {path} [tracing] endpoint: 'collector:4318' is not an http:// or "
        "https:// URL (e.g. http://127.0.0.1:4318/v1/traces)",
        f"configuration {path} [tracing] service_name: '' is empty (expected a name)",
    )


def test_an_exporter_without_opentelemetry_installed_stops_the_agent_with_status_2(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[tracing]\nexporter = "otlp"\n')
    # As if the tracing extra were not installed: the package cannot be imported.
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["opentelemetry"] = None
        from agent.cli import main
        sys.exit(main(["run", "--config", {str(path)!r}]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stderr
    assert (
        f"configuration {path} [tracing] exporter: exporter 'otlp' needs OpenTelemetry, but "
        "opentelemetry.sdk.trace is not installed (pip install 'virtactor[tracing]', or "
        'exporter = "none")'
    ) in done.stderr
    assert "Traceback" not in done.stderr
