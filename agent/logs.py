"""How the agent and the conductor log: readable text, or one JSON object per line, every line
a request causes naming that request.

`RequestContextFilter` adds to each record the fields of the request the logging code works
for (`agent.observability.requests.request_context()`): `request_id`, `global_request_id`
(the id of the request that caused this one: a conductor's line for a save names the agent's
request), `trace_id` (of the W3C trace the request runs in: `current_trace()`), `actor`
(the address of the actor whose handler logs) and `caller` (the identity that signed the
request, when messages are signed: docs/security.md). It reads contextvars, so lines logged
in an actor's handler, in the blocking calls it runs in the thread pool (the executor copies
contextvars), and in the request server's own task all carry them; a line logged outside
any request has them as None.

`configure_logging(section)` installs one handler on the root logger with that filter and
the formatter `[logging] format` names; `virtactor run` and `virtactor conductor` call it once
the configuration is read.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from actors.cell import running_cell
from agent.config import LoggingSection
from agent.observability.requests import request_context
from agent.observability.tracing import current_trace

# The fields the filter sets, and what text lines show of them.
REQUEST_FIELDS = ("request_id", "global_request_id", "trace_id", "actor", "caller")

# What every LogRecord has: anything else on a record came from `extra=` and is a field.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    *REQUEST_FIELDS,
}


class RequestContextFilter(logging.Filter):
    """Adds the current request's fields to every record (never drops one). A field the
    logging call set itself (`extra={"request_id": ...}`) is kept."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context()
        fields = record.__dict__
        if "request_id" not in fields:
            fields["request_id"] = getattr(context, "request_id", None)
        if "global_request_id" not in fields:
            fields["global_request_id"] = getattr(context, "global_request_id", None)
        if "trace_id" not in fields:
            trace = current_trace()
            fields["trace_id"] = None if trace is None else trace.trace_id
        if "actor" not in fields:
            cell = running_cell.get()
            fields["actor"] = None if cell is None else cell.address
        if "caller" not in fields:
            # The signed identity the request came from (None on an unsigned bus).
            fields["caller"] = getattr(context, "obj_caller", None)
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request global=... actor] message`; the bracket only on lines a
    request caused or an actor logged."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(ids)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.ids = _ids(record)
        return super().format(record)


def _ids(record: logging.LogRecord) -> str:
    request_id = getattr(record, "request_id", None)
    global_id = getattr(record, "global_request_id", None)
    actor = getattr(record, "actor", None)
    caller = getattr(record, "caller", None)
    parts = [] if request_id is None else [request_id]
    if global_id is not None and global_id != request_id:
        parts.append(f"global={global_id}")
    if caller is not None:
        parts.append(f"by={caller}")
    if actor is not None:
        parts.append(actor)
    return f"[{' '.join(parts)}] " if parts else ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (ISO 8601, UTC), `level`, `logger`, `message`, the
    request fields, every field the call passed in `extra=`, and `exception` (the formatted
    traceback) when there is one. Values JSON cannot hold are written as their `str()`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in line:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _iso_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def log_handler(format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A handler writing to `stream` (stderr) in `format` ("text" or "json"), with the
    request fields on every record."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    return handler


def configure_logging(
    section: LoggingSection, *, default_level: str = "WARNING", stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root logger's handlers with one `log_handler` in `section.format`, at
    `section.level` (or `default_level`, the command line's, when that is empty); returns
    the handler. The section was checked when the configuration was loaded."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    handler = log_handler(section.format, stream)
    root.addHandler(handler)
    root.setLevel((section.level or default_level).upper())
    return handler
