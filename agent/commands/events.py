"""`virtactor events [PATTERN]`: a live tail of the events agents publish.

One line per event: its topic, the payload's object type, the sending host and the fields
the event says changed (`--json`: one JSON document per line, with the payload's fields).
It runs until SIGINT or SIGTERM (exit 0), or until `--count` events were shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from agent.commands import EXIT_OK
from agent.commands.common import connected
from agent.commands.render import plain
from agent.rpc.envelope import Event
from schemas import VersionedObject


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Print events until cancelled (a signal: see `agent.signals`) or `--count` of them."""
    shown = 0
    async with connected(args) as client, await client.subscribe(args.pattern) as stream:
        # Said on stderr, so a script reading stdout knows when to trigger what it awaits.
        sys.stderr.write(f"listening for {args.pattern!r}\n")
        sys.stderr.flush()
        async for event in stream:
            out.write((event_json(event) if args.json else event_line(event)) + "\n")
            out.flush()
            shown += 1
            if args.count is not None and shown >= args.count:
                break
    return EXIT_OK


def changed_fields(payload: Any) -> list[str]:
    """The fields an object event says changed, sorted; empty for anything else."""
    if isinstance(payload, VersionedObject):
        return sorted(payload.obj_what_changed())
    return []


def event_line(event: Event) -> str:
    """`topic  Type  from sender  changed: a, b` for people."""
    kind = type(event.payload).__name__
    changed = ", ".join(changed_fields(event.payload)) or "-"
    return f"{event.topic}  {kind}  from {event.sender_host}  changed: {changed}"


def event_json(event: Event) -> str:
    """One JSON line: topic, type, sender, changed and the payload's fields."""
    document = {
        "topic": event.topic,
        "type": type(event.payload).__name__,
        "sender": event.sender_host,
        "changed": changed_fields(event.payload),
        "payload": plain(event.payload),
    }
    return json.dumps(document)
