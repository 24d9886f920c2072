"""`virtactor call HOST METHOD [key=value | key=@file.json ...]`: any served method, by name.

The arguments are read by `agent.commands.values` (objects built from the handler's
parameter types); the result is printed as a table, or with `--json` as one JSON document.
An error of the agent is one line `ErrorClass: message` on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from agent.commands.common import EXIT_OK, connected
from agent.commands.render import write_json, write_table
from agent.commands.values import (
    built_arguments,
    entry_for,
    instance_address,
    parse_pairs,
)

HELP = "call any method an agent serves (see README's driver-method table)"
EPILOG = """\
values: JSON literals (3, 2.5, true, false, null, "text", [..], {..}); a bare word is a string;
key=@file.json reads the value from a file. A JSON object given for an object parameter
becomes that object, e.g. instance='{"uuid": "..."}' for `instance: Instance`.

examples:
  virtactor call cmp-1 get_available_nodes --url amqp://guest:guest@localhost/
  virtactor call cmp-1 get_info uuid=6695eb01-f6a4-8304-79aa-97f3502e193b
  virtactor call cmp-1 pause --instance 6695eb01-f6a4-8304-79aa-97f3502e193b
  virtactor call cmp-1 spawn instance=@instance.json image_meta=@image.json --timeout 300
"""


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "call",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        parents=parents,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", help="the agent's host name")
    parser.add_argument("method", help="the method, as named in the driver-method table")
    parser.add_argument(
        "arguments", nargs="*", metavar="key=value", help="the method's arguments by name"
    )
    parser.add_argument(
        "--instance",
        metavar="UUID",
        help="address the instance's actor (and pass instance={uuid} if the method takes one)",
    )
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Read the arguments (a `UsageError` before anything connects), call, print."""
    pairs = parse_pairs(args.arguments)
    entry = entry_for(args.method, pairs, args.instance)
    arguments = built_arguments(entry, pairs, args.instance)
    async with connected(args) as client:
        result = await client.call(
            args.host,
            args.method,
            arguments,
            instance=instance_address(arguments, args.instance),
        )
    if args.json:
        write_json(result, out)
    else:
        write_table(result, out, title=f"{args.method} on {args.host}")
    return EXIT_OK
