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

from agent.commands.common import EXIT_OK, connected
from agent.commands.render import plain
from agent.rpc.envelope import Event
from schemas import VersionedObject

HELP = "print the events agents publish, live, until SIGINT/SIGTERM or --count"
EPILOG = """\
patterns are AMQP topic patterns: '*' one word, '#' any words. Topics are
instance.<uuid>.<what> and host.<host>.<what>, for example:
  virtactor events 'host.cmp-1.*'          the host's heartbeat, connection, ... events
  virtactor events 'instance.*.state'      every guest's state changes
  virtactor events --json --count 1        the next event, as one JSON line
"""


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "events",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "pattern", nargs="?", default="#", help="topic pattern (default: '#', every event)"
    )
    parser.add_argument(
        "--count", type=_count, metavar="N", help="stop after N events (default: never)"
    )
    parser.set_defaults(run=run, stops_on_signal=True)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


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
