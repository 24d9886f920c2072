"""Log lines name the request they were logged for (in a handler, and in the blocking calls
it runs in the thread pool), as readable text or one JSON object per line; `[logging]` and
`[metrics]` are checked at load; W3C traceparent values are read, made and continued."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors import Actor, ActorSystem, BlockingExecutor, handler, instance_address
from agent.config import ConfigError, LoggingSection, load_config
from agent.logs import configure_logging, log_handler
from agent.observability.tracing import TraceParent, trace_id_of
from schemas.objects import RequestContext

UUID = "6f2b0c52-3f39-4c39-8d8a-1d8b2a4b6c10"
log = logging.getLogger("tests.agent.test_logging")


class Logging(Actor):
    @handler
    async def work(self) -> None:
        log.info("in the handler")
        await self.system.executor.run(log.info, "in the thread pool")


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = log_handler("json", stream)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        log.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_lines_of_a_handler_and_of_its_blocking_calls_carry_the_request_id(
    captured: io.StringIO,
) -> None:
    executor = BlockingExecutor(2, "test")
    context = RequestContext(request_id="req-7", global_request_id="req-1")
    async with ActorSystem(executor=executor) as system:
        ref = system.spawn(instance_address(UUID), Logging)
        await ref.ask("work", timeout=10, context=context)
        log.info("after the request")
    await executor.aclose()

    handled, pooled, after = lines(captured)
    for line in (handled, pooled):
        assert (line["request_id"], line["global_request_id"], line["actor"]) == (
            "req-7",
            "req-1",
            f"instance:{UUID}",
        )
    assert pooled["message"] == "in the thread pool"
    assert "request_id" not in after
    assert "actor" not in after


def test_a_text_line_shows_the_ids_in_brackets_before_the_message() -> None:
    stream = io.StringIO()
    handler = log_handler("text", stream)
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "paused", (), None)
    record.request_id, record.global_request_id, record.actor = "req-7", "req-1", "host"

    handler.handle(record)

    assert (
        stream.getvalue()
        .rstrip()
        .endswith("INFO tests.agent.test_logging [req-7 global=req-1 host] paused")
    )


def test_a_json_line_holds_the_extra_fields_and_the_exception() -> None:
    stream = io.StringIO()
    handler = log_handler("json", stream)
    try:
        raise ValueError("bad value 3")
    except ValueError:
        record = log.makeRecord(
            log.name,
            logging.ERROR,
            __file__,
            1,
            "call %s failed",
            ("pause",),
            sys.exc_info(),
            extra={"outcome": "ValueError", "duration_ms": 1.5, "uuid": object()},
        )
    handler.handle(record)

    line = json.loads(stream.getvalue())
    assert (line["level"], line["logger"], line["message"]) == (
        "ERROR",
        "tests.agent.test_logging",
        "call pause failed",
    )
    assert (line["outcome"], line["duration_ms"]) == ("ValueError", 1.5)
    assert line["uuid"].startswith("<object object")
    assert "ValueError: bad value 3" in line["exception"]
    assert line["time"].endswith("Z")


def test_configure_logging_installs_one_root_handler_at_the_configured_level() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        configure_logging(LoggingSection(format="json", level="info"), stream=stream)
        assert root.level == logging.INFO
        logging.getLogger("agent.somewhere").info("hello")
        configure_logging(LoggingSection(), default_level="ERROR", stream=stream)
        assert root.level == logging.ERROR
        assert len(root.handlers) == 1
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)

    assert json.loads(stream.getvalue().splitlines()[0])["message"] == "hello"


def test_logging_and_metrics_settings_are_checked_at_load(tmp_path: Path) -> None:
    path = tmp_path / "virtactor.toml"
    path.write_text('[logging]\nformat = "xml"\nlevel = "LOUD"\n[metrics]\nlisten = "localhost"\n')

    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})

    assert raised.value.problems == (
        f"configuration {path} [metrics] listen: 'localhost' is not host:port "
        "(e.g. 127.0.0.1:9188, [::1]:9188, :9188)",
        f"configuration {path} [logging] format: 'xml' is not one of text, json",
        f"configuration {path} [logging] level: 'LOUD' is not a log level "
        "(expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, or empty)",
    )


def test_a_metrics_address_loads_from_the_environment() -> None:
    config = load_config(None, environ={"VIRTACTOR_METRICS_LISTEN": "[::1]:0"})

    assert config.metrics.listen == "[::1]:0"


def test_a_traceparent_is_read_continued_and_made() -> None:
    text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    parent = TraceParent.parse(text)

    assert parent is not None and str(parent) == text
    child = parent.child()
    assert (child.trace_id, child.flags) == (parent.trace_id, "01")
    assert child.span_id != parent.span_id
    assert TraceParent.parse(str(TraceParent.new())) is not None


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ],
)
def test_a_malformed_traceparent_is_none(text: str | None) -> None:
    assert TraceParent.parse(text) is None


def test_the_trace_id_of_a_context_without_a_traceparent_is_none() -> None:
    assert trace_id_of(RequestContext(request_id="req-1")) is None
    assert trace_id_of(None) is None
