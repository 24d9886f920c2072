"""Two agents over the real RabbitMQ: a client's call to agent A makes A call agent B (a live
migration's first step, `check_can_live_migrate_destination`, sent by A's migration actor
through `Agent.peers`), and B's request continues the client's trace, its parent span A's.

Spans go to one in-memory exporter (client, A and B each with spans of their own), so the
test reads the whole chain: client span -> A's server span -> A's client span -> B's server
span. The agents' log lines follow the same request: the line B writes for the call it served
carries the global request id of the client's call to A. libvirt's test driver cannot
migrate: the workflow then fails and the guest stays.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from actors.addresses import migration_address
from agent.client import ComputeClient
from agent.config import AmqpSection, ConductorSection
from agent.logs import log_handler
from agent.observability.otel import OtelSpans
from agent.observability.tracing import TraceParent
from agent.rpc.envelope import Request, unpack
from agent.service import Agent
from agent.transport import Delivery, Outcome
from schemas import DecodeLimits, default_registry
from schemas.objects import Migration
from tests.actors.instance.fakes import image_meta, instance
from tests.agent.conftest import delete_amqp_topology
from tests.agent.embedded import domain_removed, embedded_config, make_root_image
from tests.agent.virt.helpers import wait_for
from tests.conftest import ON_SESSION_LOOP

pytestmark = ON_SESSION_LOOP

SOURCE, DEST = "trc-src", "trc-dst"
PEER_CALL = "check_can_live_migrate_destination"


def received_by(agent: Agent) -> list[tuple[str, TraceParent | None]]:
    """Record (method, traceparent) of each request `agent` serves from now on (call
    before `start`, which hands the dispatcher's `handle` to the transport)."""
    received: list[tuple[str, TraceParent | None]] = []
    serve = agent.dispatcher.handle

    async def handle(delivery: Delivery) -> Outcome:
        request = unpack(delivery.body, default_registry, DecodeLimits())
        if isinstance(request, Request):
            received.append((request.method, TraceParent.from_headers(delivery.headers)))
        return await serve(delivery)

    agent.dispatcher.handle = handle  # type: ignore[method-assign]
    return received


def one(spans: list[ReadableSpan], service: str, name: str, kind: SpanKind) -> ReadableSpan:
    found = [
        span
        for span in spans
        if span.name == name
        and span.kind is kind
        and span.resource.attributes["service.name"] == service
    ]
    assert len(found) == 1, [(s.name, s.kind, s.resource.attributes) for s in spans]
    return found[0]


def ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    """(trace id, span id, parent span id) in hex."""
    context = span.get_span_context()
    assert context is not None
    parent = None if span.parent is None else f"{span.parent.span_id:016x}"
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", parent


@contextmanager
def served_log() -> Iterator[io.StringIO]:
    """The dispatchers' lines (one per request served), as JSON, while inside."""
    logged = io.StringIO()
    server_log = logging.getLogger("agent.rpc.server")
    handler, level = log_handler("json", logged), server_log.level
    server_log.addHandler(handler)
    server_log.setLevel(logging.INFO)
    try:
        yield logged
    finally:
        server_log.removeHandler(handler)
        server_log.setLevel(level)


def served_lines(stream: io.StringIO) -> dict[str, dict[str, object]]:
    """The JSON line each served method was logged with, by method (the last one)."""
    found = {}
    for text in stream.getvalue().splitlines():
        line = json.loads(text)
        if "rpc_method" in line:
            found[str(line["rpc_method"])] = line
    return found


async def test_a_call_between_agents_continues_the_trace_and_request_of_the_one_that_made_it(
    rabbitmq_url: str, tmp_path: Path
) -> None:
    await make_root_image(tmp_path)
    prefix = f"vt-trc-{uuid.uuid4().hex[:8]}"
    exporter = InMemorySpanExporter()

    def agent(host: str) -> Agent:
        config = dataclasses.replace(
            embedded_config(tmp_path, host),
            amqp=AmqpSection(url=rabbitmq_url, prefix=prefix),
            conductor=ConductorSection(save_records=False),
        )
        return Agent(config, spans=OtelSpans(exporter, host, batch=False))

    source, dest = agent(SOURCE), agent(DEST)
    dest_received = received_by(dest)
    client_spans = OtelSpans(exporter, "client", batch=False)
    try:
        with served_log() as logged:
            await peer_call_made(source, dest, dest_received, client_spans, rabbitmq_url, prefix)
    finally:
        await client_spans.aclose()
        await delete_amqp_topology(rabbitmq_url, prefix, [SOURCE, DEST])

    trace_id = chain_of_spans(list(exporter.get_finished_spans()), dest_received)
    # One request followed through both agents' logs: B's line for the call A made while
    # serving the client's names the client's request (its global request id), as any later
    # hop would; each line has its own request id.
    lines = served_lines(logged)
    at_source, at_dest = lines["live_migration"], lines[PEER_CALL]
    first = at_source.get("global_request_id", at_source["request_id"])
    assert at_dest["global_request_id"] == first
    assert at_dest["request_id"] != at_source["request_id"]
    assert at_dest["trace_id"] == at_source["trace_id"] == trace_id


async def peer_call_made(
    source: Agent,
    dest: Agent,
    dest_received: list[tuple[str, TraceParent | None]],
    client_spans: OtelSpans,
    rabbitmq_url: str,
    prefix: str,
) -> None:
    """A client asks `source` to live-migrate a new guest to `dest`; returns once the
    workflow (which calls `dest` first) ended and both agents closed."""
    guest = instance(str(uuid.uuid4()), name=f"trc-{uuid.uuid4().hex[:8]}")
    client: ComputeClient | None = None
    async with domain_removed(guest.uuid):
        try:
            for started in (dest, source):
                await started.start()
                await started.wait_ready(timeout=30)
            client = await ComputeClient.connect(
                rabbitmq_url, prefix=prefix, default_timeout=30, spans=client_spans
            )
            spawned = await client.spawn(SOURCE, guest, image_meta())
            migration = Migration(
                uuid=str(uuid.uuid4()),
                instance_uuid=guest.uuid,
                migration_type="live-migration",
                status="queued",
            )
            await client.live_migration(SOURCE, spawned, DEST, migration)
            await wait_for(lambda: any(m == PEER_CALL for m, _ in dest_received), 30)
            # The workflow ends (failed: the test driver cannot migrate) before clean-up.
            address = migration_address(migration.uuid)
            await wait_for(lambda: address not in source.system, 60)
        finally:
            if client is not None:
                await client.aclose()
            await source.aclose()
            await dest.aclose()


def chain_of_spans(
    spans: list[ReadableSpan], dest_received: list[tuple[str, TraceParent | None]]
) -> str:
    """Client -> A -> A's call -> B in one trace, as sent and as B received it; its id."""
    called = one(spans, "client", "live_migration", SpanKind.CLIENT)
    served = one(spans, SOURCE, "live_migration", SpanKind.SERVER)
    peer_call = one(spans, SOURCE, PEER_CALL, SpanKind.CLIENT)
    peer_served = one(spans, DEST, PEER_CALL, SpanKind.SERVER)
    trace_id, called_id, _ = ids(called)
    assert ids(served)[0] == trace_id and ids(served)[2] == called_id
    assert ids(peer_call)[0] == trace_id and ids(peer_call)[2] == ids(served)[1]
    assert ids(peer_served)[0] == trace_id and ids(peer_served)[2] == ids(peer_call)[1]
    # What B received on the wire: the client's trace, A's span as its parent.
    carried = next(trace for method, trace in dest_received if method == PEER_CALL)
    assert carried is not None
    assert (carried.trace_id, carried.span_id) == (trace_id, ids(peer_call)[1])
    # Spans of one service go to one exporter, each named by its service.
    assert {span.resource.attributes["service.name"] for span in spans} >= {
        "client",
        SOURCE,
        DEST,
    }
    return trace_id
